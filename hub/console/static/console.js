// The console's few behaviours beyond htmx, under a CSP with no inline script: each is bound by a data- attribute.
(function () {
  'use strict';
  // <button data-copy="#id">: copy the text of #id (a token shown once).
  document.addEventListener('click', function (event) {
    var button = event.target.closest('[data-copy]');
    if (!button) return;
    var source = document.querySelector(button.getAttribute('data-copy'));
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = 'Copied';
      }, function () {});
    }
  });
  // A form with data-confirm="question" asks before it is sent (deleting something, say).
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();  // htmx listens for submit too: without this it would send the form anyway
    }
  }, true);
  // htmx: after a swap, move the focus to an element marked autofocus inside the new content (keyboard users).
  document.addEventListener('htmx:afterSwap', function (event) {
    var focus = event.detail.target.querySelector('[data-focus]');
    if (focus) focus.focus();
  });
})();
