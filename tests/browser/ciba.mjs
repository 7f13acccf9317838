// The CIBA approval page in a real browser (Chromium, driven by
// playwright-core) at phone size: open {issuer}/ciba, sign in, find the
// request whose binding message is BINDING_MESSAGE, check that the page
// names the client, shows the scopes and shows the binding message verbatim
// as text (it may hold markup, which must not be rendered), that the page
// fits the phone, then approve and see the "Approved" page. Everything
// comes from the environment:
//
//   START_URL          {issuer}/ciba
//   USERNAME, PASSWORD typed into the sign-in form
//   CLIENT_NAME        the client's name, which the page must show
//   BINDING_MESSAGE    the request's binding message, exactly as sent
//   EXPECT_TEXT        (optional) JSON array of more strings the request's
//                      card must show (the scopes in words)
//   ARTIFACT_DIR       where screenshots go (login.png, approve.png,
//                      done.png, failure.png)
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
const PHONE = { width: 390, height: 844 };

// The same flags as flow.mjs and device.mjs.
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
  username: 'input[name=username]',
  password: 'input[name=password]',
  login: 'form:has(input[name=password]) button:not([type=button]):not([type=reset]), form:has(input[name=password]) input[type=submit]',
  allow: 'button[name=decision][value=allow]',
  deny: 'button[name=decision][value=deny]',
  binding: '.binding-message',
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
  card: '', // the text of the request's card on the approval page
  bindingText: '', // the binding message element's text
  bindingMarkup: 0, // elements inside the binding message element (0: shown as text)
  final: '',
  heading: '',
  phone: null, // layout of the approval page
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

// clickAndWait clicks the locator and waits for the form submission's page.
async function clickAndWait(locator) {
  const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: STEP_TIMEOUT });
  await locator.click({ timeout: STEP_TIMEOUT });
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

// findCard finds the binding message element whose text is msg and, from
// it, the nearest ancestor holding a decision=allow button: the request's
// card. It marks both (data attributes) for the locators below and
// describes them.
async function findCard(msg) {
  return page.evaluate(({ msg, sel }) => {
    const els = [...document.querySelectorAll(sel.binding)];
    const el = els.find((e) => e.textContent.trim() === msg);
    if (!el) return { found: false, shown: els.map((e) => e.textContent.trim()) };
    let card = el;
    while (card && !card.querySelector(sel.allow)) card = card.parentElement;
    if (!card) return { found: true, card: false };
    if (card.querySelectorAll(sel.allow).length !== 1) return { found: true, card: false, many: card.querySelectorAll(sel.allow).length };
    el.setAttribute('data-test-binding', '');
    card.setAttribute('data-test-card', '');
    return {
      found: true,
      card: true,
      text: card.innerText.replace(/\s+/g, ' ').trim(),
      bindingText: el.innerText,
      bindingMarkup: el.querySelectorAll('*').length,
      // Elements whose text is what a tag of the message wraps: the
      // message's markup rendered elsewhere on the page.
      rendered: (() => {
        const wrapped = [...msg.matchAll(/<([a-z]+)\b[^>]*>([^<]+)<\/\1>/gi)].map((m) => m[2].trim());
        return [...document.body.querySelectorAll('*')].filter((e) => e.children.length === 0 && wrapped.includes(e.textContent.trim())).length;
      })(),
    };
  }, { msg, sel: SEL });
}

// phoneLayout reports whether the page fits the phone: no sideways
// scrolling, and the card's decision buttons on screen and big enough to
// tap.
async function phoneLayout() {
  const layout = await page.evaluate((sel) => {
    const card = document.querySelector('[data-test-card]');
    const box = (s) => {
      const r = card?.querySelector(s)?.getBoundingClientRect();
      return r ? { width: Math.round(r.width), height: Math.round(r.height), left: Math.round(r.left), right: Math.round(r.right) } : null;
    };
    return {
      viewport: window.innerWidth,
      scrollWidth: document.documentElement.scrollWidth,
      allow: box(sel.allow),
      deny: box(sel.deny),
      binding: box(sel.binding),
    };
  }, SEL);
  summary.phone = layout;
  if (layout.scrollWidth > layout.viewport) {
    throw new FlowError(`at ${PHONE.width} px the approval page scrolls sideways (${layout.scrollWidth} px wide)`);
  }
  for (const name of ['allow', 'deny', 'binding']) {
    const b = layout[name];
    if (!b || b.left < 0 || b.right > layout.viewport) throw new FlowError(`at phone size ${name} is off screen: ${JSON.stringify(b)}`);
  }
  for (const name of ['allow', 'deny']) {
    if (layout[name].height < 44) throw new FlowError(`at phone size the ${name} button is ${layout[name].height} px tall, under 44`);
  }
}

async function main() {
  const startUrl = env('START_URL');
  const username = env('USERNAME');
  const password = env('PASSWORD');
  const clientName = env('CLIENT_NAME');
  const msg = env('BINDING_MESSAGE');
  const expectText = process.env.EXPECT_TEXT ? JSON.parse(process.env.EXPECT_TEXT) : [];
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
    viewport: PHONE,
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
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
  await expectVisible(SEL.username, 'the sign-in form');
  summary.sawLogin = true;
  await screenshot('login.png');
  await page.locator(SEL.username).fill(username);
  await page.locator(SEL.password).fill(password);
  await clickAndWait(page.locator(SEL.login).first());

  await expectVisible(SEL.allow, 'the approval page');
  const card = await findCard(msg);
  if (!card.found) throw new FlowError(`no binding message "${msg}" on the page (it shows ${JSON.stringify(card.shown)}): "${await text()}"`);
  if (!card.card) throw new FlowError(`the binding message "${msg}" is not in a card with exactly one Approve button (${card.many ?? 0})`);
  summary.card = card.text;
  summary.bindingText = card.bindingText;
  summary.bindingMarkup = card.bindingMarkup;
  if (card.bindingMarkup !== 0 || card.rendered !== 0) throw new FlowError(`the binding message's markup was rendered: ${card.bindingMarkup} elements inside it, ${card.rendered} elements with the text of one of its tags`);
  if (!(await page.locator('[data-test-binding]').isVisible())) throw new FlowError('the binding message is hidden');
  for (const want of [clientName, msg, ...expectText]) {
    if (!summary.card.includes(want)) throw new FlowError(`the request's card does not show "${want}": "${summary.card}"`);
  }
  await page.locator('[data-test-binding]').scrollIntoViewIfNeeded();
  await screenshot('approve.png');
  await phoneLayout();
  await clickAndWait(page.locator(`[data-test-card] ${SEL.allow}`));

  summary.final = await text();
  summary.heading = (await page.locator('h1, h2').allInnerTexts()).join(' | ');
  await screenshot('done.png');
  if (!/Approved/.test(summary.heading)) throw new FlowError(`after approving, the heading is "${summary.heading}": "${summary.final}"`);
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
