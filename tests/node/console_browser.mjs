// A person at a real browser (headless Chromium, driven by playwright-core) going through the hub's web console.
//
//   node console_browser.mjs STEPS.json
//
// STEPS.json is a list of steps, run in order in one browser profile (cookies carry over):
//   {"goto": URL}                         open a page (its HTTP status is recorded under "status")
//   {"fill": SELECTOR, "value": TEXT}     type into a field          {"check": SELECTOR}    tick a box
//   {"select": SELECTOR, "value": TEXT}   choose an option           {"click": SELECTOR}    press a button or link
//   {"press": KEY}                        a key on the keyboard (Tab, Enter, ...), wherever the focus is
//   {"wait": SELECTOR, "text": TEXT}      wait until SELECTOR is visible (and holds TEXT, when given)
//   {"gone": SELECTOR}                    wait until SELECTOR is no longer on the page
//   {"text": SELECTOR, "as": KEY}         record the element's text  {"count": SELECTOR, "as": KEY}  how many match
//   {"attr": SELECTOR, "name": N, "as": KEY}  an attribute           {"url": KEY}  the page's address now
//   {"focused": KEY}                      which element has the focus (tag, id, name, text)
//   {"value": SELECTOR, "as": KEY}        what a field holds now (an input, a textarea, a select)
//   {"upload": SELECTOR, "files": [PATH]} choose files               {"download": SELECTOR, "as": KEY}  its text
//                                         (with "base64": true its bytes in base64; "name_as": KEY its file name)
//   {"screenshot": PATH}                  the whole page as PNG      {"fetch": URL, "method": M, "as": KEY, "form": {}}
//                                         a request from the page (its status and body), as a script on it would
// Prints one JSON object: values recorded, statuses, anything the browser complained about (console errors and
// warnings, uncaught page errors, Content-Security-Policy violations), and the step that failed, if one did.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';

const steps = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const out = { values: {}, status: [], console: [], errors: [], csp: [], failed: null };
const timeout = 30000;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });
  const page = await context.newPage();
  page.on('console', (msg) => { if (msg.type() === 'error' || msg.type() === 'warning') out.console.push(msg.text()); });
  page.on('pageerror', (err) => out.errors.push(String(err)));
  page.on('dialog', (dialog) => dialog.accept());
  page.on('response', (r) => { if (r.request().resourceType() === 'document' || r.request().resourceType() === 'fetch' || r.request().resourceType() === 'xhr') out.status.push([r.url(), r.status()]); });
  for (const [i, step] of steps.entries()) {
    try {
      if ('goto' in step) {
        const r = await page.goto(step.goto, { timeout });
        out.values[step.as || `status:${step.goto}`] = r ? r.status() : null;
      } else if ('fill' in step) await page.fill(step.fill, step.value, { timeout });
      else if ('check' in step) await page.check(step.check, { timeout });
      else if ('select' in step) await page.selectOption(step.select, step.value, { timeout });
      else if ('click' in step) await page.click(step.click, { timeout });
      else if ('press' in step) await page.keyboard.press(step.press);
      else if ('wait' in step) {
        const locator = step.text ? page.locator(step.wait, { hasText: step.text }) : page.locator(step.wait);
        await locator.first().waitFor({ state: 'visible', timeout });
      } else if ('gone' in step) await page.locator(step.gone).first().waitFor({ state: 'detached', timeout });
      else if ('text' in step) out.values[step.as] = (await page.locator(step.text).first().innerText({ timeout })).trim();
      else if ('value' in step) out.values[step.as] = await page.inputValue(step.value, { timeout });
      else if ('count' in step) out.values[step.as] = await page.locator(step.count).count();
      else if ('attr' in step) out.values[step.as] = await page.locator(step.attr).first().getAttribute(step.name, { timeout });
      else if ('url' in step) out.values[step.url] = page.url();
      else if ('focused' in step) {
        out.values[step.focused] = await page.evaluate(() => {
          const e = document.activeElement;
          return e ? { tag: e.tagName.toLowerCase(), id: e.id, name: e.getAttribute('name'), text: (e.innerText || e.value || '').trim().slice(0, 80) } : null;
        });
      } else if ('upload' in step) await page.setInputFiles(step.upload, step.files, { timeout });
      else if ('download' in step) {
        const [download] = await Promise.all([page.waitForEvent('download', { timeout }), page.click(step.download, { timeout })]);
        const stream = await download.createReadStream();
        const chunks = [];
        for await (const chunk of stream) chunks.push(chunk);
        out.values[step.as] = Buffer.concat(chunks).toString(step.base64 ? 'base64' : 'utf8');
        if (step.name_as) out.values[step.name_as] = download.suggestedFilename();
      } else if ('screenshot' in step) await page.screenshot({ path: step.screenshot, fullPage: true });
      else if ('fetch' in step) {
        out.values[step.as] = await page.evaluate(async ({ url, method, form }) => {
          const init = { method: method || 'GET', credentials: 'same-origin' };
          if (form) init.body = new URLSearchParams(form);
          const r = await fetch(url, init);
          return { status: r.status, body: (await r.text()).slice(0, 2000) };
        }, { url: step.fetch, method: step.method, form: step.form });
      } else throw new Error(`unknown step ${JSON.stringify(step)}`);
    } catch (err) {
      out.failed = { step: i, what: step, error: String(err).slice(0, 1000), url: page.url(),
        body: (await page.locator('body').innerText().catch(() => '')).slice(0, 1500) };
      break;
    }
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
