// The device verification page in a real browser (Chromium, driven by
// playwright-core): open verification_uri_complete, check the code is
// pre-filled, continue, sign in, check the confirmation page names the
// client and shows the code (at desktop and at phone size), approve, and
// see the "return to your device" page. Everything comes from the
// environment:
//
//   START_URL          verification_uri_complete
//   USER_CODE          the user_code it carries (XXXX-XXXX)
//   USERNAME, PASSWORD typed into the sign-in form
//   CLIENT_NAME        the client's name, which the confirmation must show
//   ARTIFACT_DIR       where screenshots go (code.png, login.png,
//                      confirm.png, confirm-phone.png, done.png, failure.png)
//   CHROMIUM_PATH      (optional) default /usr/bin/chromium; playwright-core
//                      never downloads a browser
//   FLOW_TIMEOUT_MS    (optional) whole-run watchdog, default 75000
//
// It prints one line `RESULT {json}` and exits 0, or prints `FAIL: message`
// (and a RESULT line with ok:false) and exits 1. Every wait is bounded, and
// the browser is always closed.

import { chromium } from 'playwright-core';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const STEP_TIMEOUT = 15_000;
const CLOSE_TIMEOUT = 10_000;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

// The same flags as flow.mjs.
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

const SEL = {
  userCode: 'input[name=user_code]',
  continue: 'button[name=action][value=continue]',
  username: 'input[name=username]',
  password: 'input[name=password]',
  login: 'button[name=action][value=login]',
  allow: 'button[name=decision][value=allow]',
  deny: 'button[name=decision][value=deny]',
};

class FlowError extends Error {}

function env(name) {
  const v = process.env[name];
  if (!v) throw new FlowError(`environment variable ${name} is required`);
  return v;
}

async function withTimeout(promise, ms, what) {
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

const summary = {
  ok: false,
  sawLogin: false,
  confirmation: '',
  final: '',
  phone: null, // layout of the confirmation page at phone size
  navigations: [],
  screenshots: [],
  consoleErrors: [],
  durationMs: 0,
  error: undefined,
};

const t0 = Date.now();
let context;
let page;
let profileDir;
let artifactDir;

function log(msg) {
  console.log(`[${((Date.now() - t0) / 1000).toFixed(2)}s] ${msg}`);
}

async function screenshot(name) {
  await page.screenshot({ path: path.join(artifactDir, name), fullPage: true, timeout: STEP_TIMEOUT });
  summary.screenshots.push(name);
  log(`screenshot ${name}`);
}

async function text() {
  return (await page.locator('body').innerText({ timeout: STEP_TIMEOUT })).replace(/\s+/g, ' ').trim();
}

// clickAndWait clicks selector and waits for the form submission's page.
async function clickAndWait(selector) {
  const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: STEP_TIMEOUT });
  await page.locator(selector).first().click({ timeout: STEP_TIMEOUT });
  await navigated;
  await page.waitForLoadState('load', { timeout: STEP_TIMEOUT });
}

async function expectVisible(selector, what) {
  try {
    await page.locator(selector).first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  } catch {
    throw new FlowError(`${what} is not shown (${selector}) at ${page.url()}: "${(await text()).slice(0, 300)}"`);
  }
}

// phoneLayout reports whether the page fits a phone: no sideways
// scrolling, and both decision buttons visible and big enough to tap.
async function phoneLayout() {
  await page.setViewportSize(PHONE);
  const layout = await page.evaluate(() => {
    const box = (sel) => {
      const r = document.querySelector(sel)?.getBoundingClientRect();
      return r ? { width: Math.round(r.width), height: Math.round(r.height), left: Math.round(r.left), right: Math.round(r.right) } : null;
    };
    return {
      viewport: window.innerWidth,
      scrollWidth: document.documentElement.scrollWidth,
      allow: box('button[name=decision][value=allow]'),
      deny: box('button[name=decision][value=deny]'),
      code: box('#user-code'),
    };
  });
  await screenshot('confirm-phone.png');
  await page.setViewportSize(DESKTOP);
  summary.phone = layout;
  if (layout.scrollWidth > layout.viewport) {
    throw new FlowError(`at ${PHONE.width} px the confirmation page scrolls sideways (${layout.scrollWidth} px wide)`);
  }
  for (const name of ['allow', 'deny', 'code']) {
    const b = layout[name];
    if (!b || b.left < 0 || b.right > layout.viewport) throw new FlowError(`at phone size ${name} is off screen: ${JSON.stringify(b)}`);
  }
  for (const name of ['allow', 'deny']) {
    if (layout[name].height < 44) throw new FlowError(`at phone size the ${name} button is ${layout[name].height} px tall, under 44`);
  }
}

async function main() {
  const startUrl = env('START_URL');
  const userCode = env('USER_CODE');
  const username = env('USERNAME');
  const password = env('PASSWORD');
  const clientName = env('CLIENT_NAME');
  artifactDir = path.resolve(env('ARTIFACT_DIR'));
  await mkdir(artifactDir, { recursive: true });
  profileDir = await mkdtemp(path.join(tmpdir(), 'portcullis-chromium-'));
  const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  log(`launch ${executablePath}`);
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath,
    headless: true,
    args: LAUNCH_ARGS,
    timeout: 30_000,
    viewport: DESKTOP,
    locale: 'en-US',
    colorScheme: 'light',
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  page = context.pages()[0] || (await context.newPage());
  page.on('response', (r) => {
    const req = r.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) summary.navigations.push(`${req.method()} ${r.url()} -> ${r.status()}`);
  });
  // A CSP violation (say, a style without its nonce) shows up here.
  page.on('console', (m) => {
    if (m.type() === 'error') summary.consoleErrors.push(`${page.url()}: ${m.text()}`);
  });

  log(`open ${startUrl}`);
  await page.goto(startUrl, { waitUntil: 'load', timeout: STEP_TIMEOUT });
  await expectVisible(SEL.userCode, 'the code form');
  const prefilled = await page.locator(SEL.userCode).inputValue();
  if (prefilled !== userCode) throw new FlowError(`the code form is pre-filled with "${prefilled}", want "${userCode}"`);
  await screenshot('code.png');
  await clickAndWait(SEL.continue);

  await expectVisible(SEL.username, 'the sign-in form');
  summary.sawLogin = true;
  await screenshot('login.png');
  await page.locator(SEL.username).fill(username);
  await page.locator(SEL.password).fill(password);
  await clickAndWait(SEL.login);

  await expectVisible(SEL.allow, 'the confirmation page');
  await expectVisible(SEL.deny, 'the deny button');
  summary.confirmation = await text();
  for (const want of [clientName, userCode]) {
    if (!summary.confirmation.includes(want)) throw new FlowError(`the confirmation page does not show "${want}": "${summary.confirmation}"`);
  }
  await screenshot('confirm.png');
  await phoneLayout();
  await clickAndWait(SEL.allow);

  summary.final = await text();
  await screenshot('done.png');
  if (!summary.final.includes('return to your device')) throw new FlowError(`after approving: "${summary.final}"`);
  if (summary.consoleErrors.length > 0) throw new FlowError(`console errors: ${summary.consoleErrors.join('; ')}`);
  summary.ok = true;
}

async function closeBrowser() {
  if (!context) return;
  try {
    await withTimeout(context.close(), CLOSE_TIMEOUT, 'closing the browser');
  } catch (e) {
    console.error(`warning: ${e.message}; it is killed on exit`);
  }
  context = undefined;
}

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
  const programming = e instanceof TypeError || e instanceof ReferenceError || e instanceof SyntaxError;
  summary.error = String((programming ? e.stack : e?.message) || e).replace(/\x1b\[[0-9;]*m/g, '');
  if (watchdogFired) summary.error = `${watchdogFired}; then: ${summary.error.split('\n')[0]}`;
  if (page && artifactDir && !watchdogFired) await screenshot('failure.png').catch(() => {});
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
