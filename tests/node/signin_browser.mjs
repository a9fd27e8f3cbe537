// A person at a real browser (headless Chromium, driven by playwright-core) on the hub's sign-in page.
//
//   node signin_browser.mjs USER PASSWORD ACTION URL [URL ...]
//
// For each authorization URL, in one browser profile (so a sign-in session carries over): open it,
// fill in the user name and password if the page asks, press Allow or Deny (ACTION), and wait for
// the page that follows. A URL written `visit:URL` is only opened, and whatever it does by itself
// (another site's page that submits a form to the hub, say) is waited for. Prints one JSON array:
// per URL the page title, whether a password was asked, the error the page showed (if any) and the
// URL the browser ended at, plus anything the browser complained about on the console (a
// Content-Security-Policy violation, say).
import { chromium } from 'playwright-core';

const [user, password, action, ...urls] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const results = [];
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const console_ = [];
  page.on('console', (msg) => { if (msg.type() === 'error' || msg.type() === 'warning') console_.push(msg.text()); });
  for (const url of urls) {
    const step = { url };
    if (url.startsWith('visit:')) {
      const target = url.slice('visit:'.length);
      await page.goto(target, { timeout: 20000 });
      await page.waitForURL((u) => u.href !== target, { timeout: 20000 }).catch(() => {});
      await page.waitForLoadState('load', { timeout: 20000 });
      step.title = await page.title();
      step.final = page.url();
      step.body = (await page.locator('body').innerText().catch(() => '')).slice(0, 500);
      results.push(step);
      continue;
    }
    await page.goto(url, { timeout: 20000 });
    step.title = await page.title();
    step.asked_password = (await page.locator('input[name=password]').count()) > 0;
    if (step.asked_password) {
      await page.fill('input[name=username]', user);
      await page.fill('input[name=password]', password);
    }
    const before = page.url();
    await page.click(`button[value=${action}]`, { timeout: 10000 });
    await page.waitForURL((u) => u.href !== before, { timeout: 20000 }).catch(() => {});
    await page.waitForLoadState('load', { timeout: 20000 });
    step.final = page.url();
    step.body = (await page.locator('body').innerText().catch(() => '')).slice(0, 300);
    const error = page.locator('.error');
    step.error = (await error.count()) ? await error.innerText() : null;
    results.push(step);
  }
  results.push({ console: console_ });
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
