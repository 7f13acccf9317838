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
// (and a RESULT line with ok:false) and exits 1 (see runner.mjs).

import {
  DESKTOP, PHONE, STEP_TIMEOUT, FlowError, checkPhoneLayout, clickAndWait, env, expectVisible, launch,
  log, measureLayout, newSummary, noConsoleErrors, page, run, screenshot, text,
} from './runner.mjs';

const SEL = {
  userCode: 'input[name=user_code]',
  continue: 'button[name=action][value=continue]',
  username: 'input[name=username]',
  password: 'input[name=password]',
  login: 'button[name=action][value=login]',
  allow: 'button[name=decision][value=allow]',
  deny: 'button[name=decision][value=deny]',
};

const summary = newSummary({
  sawLogin: false,
  confirmation: '',
  final: '',
  phone: null, // layout of the confirmation page at phone size
});

// phoneLayout checks that the confirmation page fits a phone: no sideways
// scrolling, and both decision buttons visible and big enough to tap.
async function phoneLayout() {
  await page.setViewportSize(PHONE);
  const layout = await measureLayout({ allow: SEL.allow, deny: SEL.deny, code: '#user-code' });
  await screenshot('confirm-phone.png');
  await page.setViewportSize(DESKTOP);
  summary.phone = layout;
  checkPhoneLayout(layout, 'the confirmation page');
}

async function main() {
  const startUrl = env('START_URL');
  const userCode = env('USER_CODE');
  const username = env('USERNAME');
  const password = env('PASSWORD');
  const clientName = env('CLIENT_NAME');
  await launch();

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
  noConsoleErrors();
  summary.ok = true;
}

await run(main);
