// Shared set-up of the JS-surface tests: one headless Chromium (Debian's,
// driven by playwright-core), a page that loaded the built npm package, and
// the test server's control endpoint.
import { chromium } from "playwright-core";

export const port = process.env.DDP_TEST_PORT ?? "3310";
export const base = `http://127.0.0.1:${port}`;

/** Launches Debian's headless Chromium (or $CHROMIUM). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
}

/**
 * One browser for a test file (node:test before/after hooks): `b.browser`
 * once it started; `b.errors` collects the pages' uncaught errors, which
 * must be none when the file ends.
 */
export function useBrowser(before, after, assert) {
  const b = { browser: null, errors: [] };
  before(async () => {
    b.browser = await launchBrowser();
  });
  after(async () => {
    await b.browser?.close();
    assert.deepEqual(b.errors.map(String), [], "no uncaught error in the pages");
  });
  return b;
}

/** Resolves once the JS test page in `page` has loaded the npm package. */
export function pageReady(page, timeout = 10000) {
  return page.waitForFunction(() => window.ddpReady === true, null, { timeout });
}

/**
 * Opens the JS test page served at `pageBase` (the test server by default)
 * in a new browser; `errors` collects the page's uncaught errors.
 */
export async function openPage(pageBase = base) {
  const browser = await launchBrowser();
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${pageBase}/js-tests/index.html`);
  await pageReady(page);
  return { browser, page, errors };
}

let n = 0;
export function scenario(name) {
  return `${name}-${process.pid}-${++n}`;
}

export async function control(sc, action) {
  const r = await fetch(`${base}/control/${sc}/${action}`, { method: "POST" });
  if (!r.ok) throw new Error(`control ${action}: ${r.status}`);
  return r.json();
}

export const wsUrl = (sc) => `ws://127.0.0.1:${port}/t/${sc}/websocket`;

/** Fast retries, no page listeners (tests share one page). */
export const fast = { retry: { minCount: 1, minTimeout: 20, baseTimeout: 50, exponent: 1.5, maxTimeout: 200 }, watchPage: false };

/**
 * Opens one page for a test file (node:test before/after hooks) and returns
 * `inPage(fn, ...args)`, which runs `fn(args)` in it. The page must end
 * without an uncaught error. `pageBase()` (optional; it may return a
 * Promise) names the server of the page when it is not the test server.
 */
export function usePage(before, after, assert, pageBase = () => base) {
  let session;
  before(async () => (session = await openPage(await pageBase())));
  after(async () => {
    await session?.browser.close();
    assert.deepEqual(session?.errors.map(String), [], "no uncaught error in the page");
  });
  return (fn, ...args) => session.page.evaluate(fn, args);
}
