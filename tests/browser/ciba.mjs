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
// (and a RESULT line with ok:false) and exits 1 (see runner.mjs).

import {
  PHONE, STEP_TIMEOUT, FlowError, checkPhoneLayout, clickAndWait, env, expectVisible, launch, log,
  measureLayout, newSummary, noConsoleErrors, page, run, screenshot, text,
} from './runner.mjs';

const SEL = {
  username: 'input[name=username]',
  password: 'input[name=password]',
  login: 'form:has(input[name=password]) button:not([type=button]):not([type=reset]), form:has(input[name=password]) input[type=submit]',
  allow: 'button[name=decision][value=allow]',
  deny: 'button[name=decision][value=deny]',
  binding: '.binding-message',
};

const summary = newSummary({
  sawLogin: false,
  card: '', // the text of the request's card on the approval page
  bindingText: '', // the binding message element's text
  bindingMarkup: 0, // elements inside the binding message element (0: shown as text)
  final: '',
  heading: '',
  phone: null, // layout of the approval page
});

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

async function main() {
  const startUrl = env('START_URL');
  const username = env('USERNAME');
  const password = env('PASSWORD');
  const clientName = env('CLIENT_NAME');
  const msg = env('BINDING_MESSAGE');
  const expectText = process.env.EXPECT_TEXT ? JSON.parse(process.env.EXPECT_TEXT) : [];
  await launch({ viewport: PHONE, deviceScaleFactor: 2, isMobile: true, hasTouch: true });

  log(`open ${startUrl}`);
  await page.goto(startUrl, { waitUntil: 'load', timeout: STEP_TIMEOUT });
  await expectVisible(SEL.username, 'the sign-in form');
  summary.sawLogin = true;
  await screenshot('login.png');
  await page.locator(SEL.username).fill(username);
  await page.locator(SEL.password).fill(password);
  await clickAndWait(SEL.login);

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
  // The page is already at phone size: the card's decision buttons must be
  // on screen and big enough to tap, with no sideways scrolling.
  summary.phone = await measureLayout({ allow: SEL.allow, deny: SEL.deny, binding: SEL.binding }, '[data-test-card]');
  checkPhoneLayout(summary.phone, 'the approval page');
  await clickAndWait(page.locator(`[data-test-card] ${SEL.allow}`));

  summary.final = await text();
  summary.heading = (await page.locator('h1, h2').allInnerTexts()).join(' | ');
  await screenshot('done.png');
  if (!/Approved/.test(summary.heading)) throw new FlowError(`after approving, the heading is "${summary.heading}": "${summary.final}"`);
  noConsoleErrors();
  summary.ok = true;
}

await run(main);
