// A scripted sign-in in a real browser (Chromium, driven by playwright-core),
// against the Portcullis login and consent pages. Everything comes from the
// environment:
//
//   START_URL          page to open (a protected app page, an /authorize URL...)
//   USERNAME, PASSWORD typed into the Portcullis login page
//   EXPECT_URL_PREFIX  the sign-in is done when the page URL starts with it
//   EXPECT_TEXT        (optional) the final page's text must contain it
//   ARTIFACT_DIR       where screenshots go (login.png, consent.png, final.png,
//                      logout.png, after-logout.png, failure.png)
//   LOGOUT_URL         (optional) opened after the sign-in; its confirmation
//                      (button[name=confirm][value=yes]) is clicked when shown;
//                      then START_URL must show the login page again
//   CHROMIUM_PATH      (optional) default /usr/bin/chromium; playwright-core
//                      never downloads a browser
//   FLOW_TIMEOUT_MS    (optional) whole-run watchdog, default 75000
//   SEL_USERNAME, SEL_PASSWORD, SEL_LOGIN, SEL_ALLOW, SEL_CONFIRM
//                      (optional) selectors of another provider's login,
//                      consent and logout pages
//
// It prints one line `RESULT {json}` (pages visited, titles...) and exits 0,
// or prints `FAIL: message` (and a RESULT line with ok:false) and exits 1
// (see runner.mjs).

import {
  STEP_TIMEOUT, FlowError, clickAndWait, env, launch, log, newSummary, page, run, screenshot, sleep, text,
  withTimeout,
} from './runner.mjs';

const MAX_STEPS = 8; // login/consent pages shown before EXPECT_URL_PREFIX

// Selectors of the Portcullis pages; SEL_USERNAME, SEL_PASSWORD, SEL_LOGIN,
// SEL_ALLOW and SEL_CONFIRM replace them for another provider's pages.
const SEL = {
  username: process.env.SEL_USERNAME || 'input[name=username]',
  password: process.env.SEL_PASSWORD || 'input[name=password]',
  login: process.env.SEL_LOGIN || 'button[name=action][value=login]',
  allow: process.env.SEL_ALLOW || 'button[name=decision][value=allow]',
  confirm: process.env.SEL_CONFIRM || 'button[name=confirm][value=yes]',
  alert: '[role=alert], .alert',
};

const summary = newSummary({
  startUrl: '',
  finalUrl: '',
  sawLogin: false,
  sawConsent: false,
  loggedOut: null, // true once the login page is back after LOGOUT_URL
  visited: [], // committed main-frame URLs, in order
  titles: [], // {step, url, title}
  failedRequests: [],
});

async function record(step) {
  let title = '';
  try {
    title = await withTimeout(page.title(), STEP_TIMEOUT, 'page.title()');
  } catch {
    // a page in the middle of navigating has no title to give
  }
  summary.titles.push({ step, url: page.url(), title });
  log(`${step}: ${page.url()} "${title}"`);
}

async function visible(selector) {
  try {
    return await page.locator(selector).first().isVisible();
  } catch {
    return false; // the document was replaced while we looked
  }
}

// bodyText is the page's text, or '' when it cannot be had quickly.
const bodyText = () => text({ timeout: 2_000 }).catch(() => '');

// until polls check() until it returns something truthy, or fails after ms
// with what it was waiting for, where the page is, and what it says.
async function until(what, check, ms = STEP_TIMEOUT) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) {
      const shown = (await bodyText()).slice(0, 400);
      throw new FlowError(`timed out after ${ms} ms waiting for ${what}; page is ${page.url()}${shown ? `: "${shown}"` : ''}`);
    }
    await sleep(100);
  }
}

// loaded waits for the current document's load event (bounded).
async function loaded() {
  await page.waitForLoadState('load', { timeout: STEP_TIMEOUT });
}

async function signIn(startUrl, expectPrefix, username, password) {
  log(`open ${startUrl}`);
  await page.goto(startUrl, { waitUntil: 'load', timeout: STEP_TIMEOUT });
  let loginSubmitted = false;
  for (let step = 0; step < MAX_STEPS; step++) {
    // The login and consent pages come first: they may live under
    // EXPECT_URL_PREFIX too (a login gateway on the app's own origin).
    const state = await until(`a URL starting with ${expectPrefix}, the login page or the consent page`, async () => {
      if (await visible(SEL.username)) return 'login';
      if (await visible(SEL.allow)) return 'consent';
      if (page.url().startsWith(expectPrefix)) return 'done';
      return null;
    });
    if (state === 'done') return;
    await loaded();
    if (state === 'login') {
      if (loginSubmitted) {
        const alert = await page.locator(SEL.alert).first().innerText({ timeout: 1_000 }).catch(() => '');
        throw new FlowError(`the login page is shown again after submitting the credentials${alert ? `: "${alert.trim()}"` : ''} (${page.url()})`);
      }
      summary.sawLogin = true;
      await record('login');
      await screenshot('login.png');
      await page.locator(SEL.username).fill(username, { timeout: STEP_TIMEOUT });
      await page.locator(SEL.password).fill(password, { timeout: STEP_TIMEOUT });
      loginSubmitted = true;
      await clickAndWait(SEL.login);
    } else {
      if (summary.sawConsent) throw new FlowError(`the consent page is shown again after allowing (${page.url()})`);
      summary.sawConsent = true;
      await record('consent');
      await screenshot('consent.png');
      await clickAndWait(SEL.allow);
    }
  }
  throw new FlowError(`no URL starting with ${expectPrefix} after ${MAX_STEPS} pages; last ${page.url()}`);
}

async function logOut(logoutUrl, startUrl) {
  log(`open ${logoutUrl}`);
  await page.goto(logoutUrl, { waitUntil: 'load', timeout: STEP_TIMEOUT });
  if (await visible(SEL.confirm)) {
    await record('logout-confirm');
    await screenshot('logout-confirm.png');
    await clickAndWait(SEL.confirm);
  }
  // Let client-side redirects (e.g. a post-logout redirect) settle too.
  await page.waitForLoadState('networkidle', { timeout: STEP_TIMEOUT }).catch(() => {});
  await record('logout');
  await screenshot('logout.png');

  log(`open ${startUrl} again`);
  await page.goto(startUrl, { waitUntil: 'load', timeout: STEP_TIMEOUT });
  await until('the login page after logging out (is the session still alive?)', () => visible(SEL.username));
  summary.loggedOut = true;
  await record('after-logout');
  await screenshot('after-logout.png');
}

async function main() {
  const startUrl = env('START_URL');
  const username = env('USERNAME');
  const password = env('PASSWORD');
  const expectPrefix = env('EXPECT_URL_PREFIX');
  const expectText = env('EXPECT_TEXT', { required: false });
  const logoutUrl = env('LOGOUT_URL', { required: false });
  summary.startUrl = startUrl;

  await launch();
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) summary.visited.push(f.url());
  });
  page.on('requestfailed', (r) => {
    summary.failedRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
  });

  await signIn(startUrl, expectPrefix, username, password);
  // The destination may be a page that does not exist (a bare callback): its
  // load event still fires.
  await loaded();
  summary.finalUrl = page.url();
  await record('final');
  await screenshot('final.png');
  if (expectText) {
    const shown = await bodyText();
    if (!shown.includes(expectText)) {
      throw new FlowError(`the final page ${page.url()} does not contain ${JSON.stringify(expectText)}: "${shown.slice(0, 400)}"`);
    }
  }

  if (logoutUrl) await logOut(logoutUrl, startUrl);
  summary.ok = true;
}

await run(main, {
  onFailure: () => {
    summary.finalUrl = summary.finalUrl || page.url();
  },
});
