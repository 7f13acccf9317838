// The skeleton the browser scripts (flow.mjs, device.mjs, ciba.mjs) share:
// Chromium launched with the same flags and a fresh profile, a watchdog over
// the whole run, bounded waits, the RESULT line and the exit code. A script
// declares its summary with newSummary, opens the browser with launch() in
// its main function, and hands that function to run():
//
//   const summary = newSummary({ sawLogin: false });
//   async function main() {
//     const startUrl = env('START_URL');
//     await launch();
//     await page.goto(startUrl);
//     ...
//     summary.ok = true;
//   }
//   await run(main);
//
// The runner reads ARTIFACT_DIR (where screenshots go), CHROMIUM_PATH
// (optional, default /usr/bin/chromium; playwright-core never downloads a
// browser) and FLOW_TIMEOUT_MS (optional whole-run watchdog, default 75000).
// A run prints one line `RESULT {json}` and exits 0, or prints
// `FAIL: message` (and a RESULT line with ok:false) and exits 1. Every wait
// is bounded, and the browser is always closed.

import { chromium } from 'playwright-core';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** STEP_TIMEOUT bounds any single wait: page load, element, URL. */
export const STEP_TIMEOUT = 15_000;
/** CLOSE_TIMEOUT bounds closing the browser. */
export const CLOSE_TIMEOUT = 10_000;
/** DESKTOP is the default viewport. */
export const DESKTOP = { width: 1280, height: 800 };
/** PHONE is the viewport of the phone-size checks. */
export const PHONE = { width: 390, height: 844 };

// The flags every script launches Chromium with.
const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** FlowError is a failed check or step: its message is the whole report. */
export class FlowError extends Error {}

/**
 * page is the browser's page once launch() has run (a live binding: it is
 * undefined before).
 */
export let page;

const t0 = Date.now();
let context; // the browser, once launched
let profileDir;
let artifactDir;
let summary;

/**
 * newSummary makes the RESULT line's object: fields (the script's own)
 * plus ok, navigations, screenshots, consoleErrors, durationMs and error,
 * which the runner fills in.
 */
export function newSummary(fields = {}) {
  summary = {
    ok: false,
    ...fields,
    navigations: [], // main-frame document responses: "GET url -> status"
    screenshots: [],
    consoleErrors: [],
    durationMs: 0,
    error: undefined,
  };
  return summary;
}

/** env returns the environment variable name; it is required unless told. */
export function env(name, { required = true } = {}) {
  const v = process.env[name];
  if (required && !v) throw new FlowError(`environment variable ${name} is required`);
  return v || '';
}

/** sleep resolves after ms. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** withTimeout bounds a promise that has no timeout of its own. */
export async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new FlowError(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** log prints msg with the seconds since the start. */
export function log(msg) {
  console.log(`[${((Date.now() - t0) / 1000).toFixed(2)}s] ${msg}`);
}

/**
 * launch creates ARTIFACT_DIR and a fresh profile, starts Chromium with
 * options (playwright's persistent-context options, over a desktop
 * viewport, en-US and the light colour scheme), sets `page`, and records
 * main-frame navigations and console errors (a CSP violation, say a style
 * without its nonce, shows up there) in the summary.
 */
export async function launch(options = {}) {
  artifactDir = path.resolve(env('ARTIFACT_DIR'));
  const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  await mkdir(artifactDir, { recursive: true });
  profileDir = await mkdtemp(path.join(tmpdir(), 'portcullis-chromium-'));

  log(`launch ${executablePath} (profile ${profileDir})`);
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath,
    headless: true,
    args: LAUNCH_ARGS,
    timeout: 30_000,
    viewport: DESKTOP,
    locale: 'en-US',
    colorScheme: 'light',
    ...options,
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  page = context.pages()[0] || (await context.newPage());
  page.on('response', (r) => {
    const req = r.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      summary.navigations.push(`${req.method()} ${r.url()} -> ${r.status()}`);
    }
  });
  page.on('console', (m) => {
    if (m.type() === 'error') summary.consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  return page;
}

/** screenshot saves the whole page as ARTIFACT_DIR/name. */
export async function screenshot(name) {
  await page.screenshot({ path: path.join(artifactDir, name), fullPage: true, timeout: STEP_TIMEOUT });
  summary.screenshots.push(name);
  log(`screenshot ${name}`);
}

/** text returns the page's text, its white space collapsed. */
export async function text({ timeout = STEP_TIMEOUT } = {}) {
  return (await page.locator('body').innerText({ timeout })).replace(/\s+/g, ' ').trim();
}

/**
 * clickAndWait clicks target (a selector, whose first match is clicked, or
 * a locator) and waits until the main frame has navigated and loaded: a
 * form submission, and every redirect after it.
 */
export async function clickAndWait(target) {
  const locator = typeof target === 'string' ? page.locator(target).first() : target;
  const navigated = page.waitForEvent('framenavigated', {
    predicate: (f) => f === page.mainFrame(),
    timeout: STEP_TIMEOUT,
  });
  await locator.click({ timeout: STEP_TIMEOUT });
  await navigated;
  await page.waitForLoadState('load', { timeout: STEP_TIMEOUT });
}

/** expectVisible waits for selector, or fails naming what and the page. */
export async function expectVisible(selector, what) {
  try {
    await page.locator(selector).first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  } catch {
    throw new FlowError(`${what} is not shown (${selector}) at ${page.url()}: "${(await text()).slice(0, 300)}"`);
  }
}

/**
 * measureLayout returns the viewport width, the document's scroll width
 * and, for each name of boxes, the box of the first match of its selector
 * (within the first match of the within selector when given; null when
 * there is none).
 */
export async function measureLayout(boxes, within) {
  return page.evaluate(({ boxes, within }) => {
    const root = within ? document.querySelector(within) : document;
    const box = (sel) => {
      const r = root?.querySelector(sel)?.getBoundingClientRect();
      return r ? { width: Math.round(r.width), height: Math.round(r.height), left: Math.round(r.left), right: Math.round(r.right) } : null;
    };
    const layout = { viewport: window.innerWidth, scrollWidth: document.documentElement.scrollWidth };
    for (const [name, sel] of Object.entries(boxes)) layout[name] = box(sel);
    return layout;
  }, { boxes, within });
}

/**
 * checkPhoneLayout fails unless layout (from measureLayout at phone size)
 * fits the phone: no sideways scrolling, every box on screen, and the allow
 * and deny buttons big enough to tap. what names the page.
 */
export function checkPhoneLayout(layout, what) {
  if (layout.scrollWidth > layout.viewport) {
    throw new FlowError(`at ${PHONE.width} px ${what} scrolls sideways (${layout.scrollWidth} px wide)`);
  }
  for (const name of Object.keys(layout).filter((k) => k !== 'viewport' && k !== 'scrollWidth')) {
    const b = layout[name];
    if (!b || b.left < 0 || b.right > layout.viewport) throw new FlowError(`at phone size ${name} is off screen: ${JSON.stringify(b)}`);
  }
  for (const name of ['allow', 'deny']) {
    if (layout[name].height < 44) throw new FlowError(`at phone size the ${name} button is ${layout[name].height} px tall, under 44`);
  }
}

/**
 * noConsoleErrors fails when the page logged errors (a CSP violation, say).
 */
export function noConsoleErrors() {
  if (summary.consoleErrors.length > 0) throw new FlowError(`console errors: ${summary.consoleErrors.join('; ')}`);
}

async function closeBrowser() {
  if (!context) return;
  try {
    await withTimeout(context.close(), CLOSE_TIMEOUT, 'closing the browser');
  } catch (e) {
    // playwright-core kills the browsers it launched when the process exits.
    console.error(`warning: ${e.message}; it is killed on exit`);
  }
  context = undefined;
}

/**
 * run runs main under the watchdog and ends the process: whatever happens
 * it closes the browser, removes the profile, prints the RESULT line and
 * exits 0 when main returned, 1 when it threw. On failure it saves
 * failure.png, after calling onFailure (which may note where it stopped in
 * the summary).
 */
export async function run(main, { onFailure } = {}) {
  if (!summary) newSummary();
  // The watchdog: however a step hangs, the run ends with a message (before
  // the Go test's own deadline). Closing the browser makes the pending step
  // fail, and the error path below reports the timeout; if even that hangs,
  // exit.
  const watchdogMs = Number(process.env.FLOW_TIMEOUT_MS) || 75_000;
  let watchdogFired = '';
  const watchdog = setTimeout(() => {
    watchdogFired = `the flow did not finish within ${watchdogMs} ms (at ${page ? page.url() : 'launch'})`;
    setTimeout(() => {
      console.error(`FAIL: ${watchdogFired}`);
      process.exit(1);
    }, CLOSE_TIMEOUT + 2_000).unref();
    closeBrowser();
  }, watchdogMs);
  watchdog.unref();

  let exitCode = 0;
  try {
    await main();
  } catch (e) {
    exitCode = 1;
    // Playwright's messages carry their call log (with colour codes); a bug
    // in a script deserves its stack.
    const programming = e instanceof TypeError || e instanceof ReferenceError || e instanceof SyntaxError;
    summary.error = String((programming ? e.stack : e?.message) || e).replace(/\x1b\[[0-9;]*m/g, '');
    if (watchdogFired) summary.error = `${watchdogFired}; then: ${summary.error.split('\n')[0]}`;
    if (page && artifactDir && !watchdogFired) {
      onFailure?.();
      await screenshot('failure.png').catch(() => {});
    }
    console.error(`FAIL: ${summary.error}`);
  } finally {
    await closeBrowser();
    if (profileDir) await rm(profileDir, { recursive: true, force: true }).catch(() => {});
    clearTimeout(watchdog);
  }
  if (watchdogFired && !exitCode) {
    exitCode = 1;
    summary.ok = false;
    summary.error = watchdogFired;
    console.error(`FAIL: ${watchdogFired}`);
  }
  summary.durationMs = Date.now() - t0;
  console.log(`RESULT ${JSON.stringify(summary)}`);
  process.exit(exitCode);
}
