// A person at a real browser (headless Chromium, driven by playwright-core) linking an account through the hub's
// /connect/NAME page.
//
//   node connect_browser.mjs ACCOUNTS URL
//
// ACCOUNTS is a JSON object: origin -> [user, password] (the hub's own sign-in, the upstream's). From URL on, on
// each page: fill in the user name and password of the page's origin if it asks, press the first of the buttons
// Sign in, Continue (link), Allow, and go on until a page with none of them. Prints one JSON object: the pages
// seen (title, origin, whether a password was asked), the last page's title, text and URL, and anything the
// browser complained about on the console (a Content-Security-Policy violation, say).
import { chromium } from 'playwright-core';

const [accountsJson, url] = process.argv.slice(2);
const accounts = JSON.parse(accountsJson);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const out = { pages: [] };
try {
  const page = await (await browser.newContext()).newPage();
  const complaints = [];
  page.on('console', (msg) => { if (msg.type() === 'error' || msg.type() === 'warning') complaints.push(msg.text()); });
  await page.goto(url, { timeout: 20000 });
  for (let step = 0; step < 10; step++) {
    await page.waitForLoadState('load', { timeout: 20000 });
    const origin = new URL(page.url()).origin;
    const seen = { title: await page.title(), origin };
    out.pages.push(seen);
    let button = null;
    for (const value of ['signin', 'link', 'allow']) {
      const found = page.locator(`button[value=${value}]`);
      if (await found.count()) { button = found.first(); break; }
    }
    if (button === null) break;
    seen.asked_password = (await page.locator('input[name=password]').count()) > 0;
    if (seen.asked_password) {
      const [user, password] = accounts[origin] || ['nobody', 'no-password'];
      await page.fill('input[name=username]', user);
      await page.fill('input[name=password]', password);
    }
    // The next document, wherever the redirects end (a sign-in comes back to the same address).
    const navigated = page.waitForEvent('framenavigated', { timeout: 60000 });
    await button.click({ timeout: 10000 });
    await navigated;
  }
  out.title = await page.title();
  out.body = (await page.locator('body').innerText().catch(() => '')).slice(0, 500);
  out.final = page.url();
  out.console = complaints;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
