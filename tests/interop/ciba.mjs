// Interop test of OpenID Connect Client-Initiated Backchannel Authentication
// (CIBA Core 1.0), poll mode: the certified openid-client library (v6) starts
// requests (initiateBackchannelAuthentication) and polls the token endpoint
// with its own loop (pollBackchannelAuthenticationGrant), as a
// client_secret_basic client and as a private_key_jwt client, while this
// script plays the user's side: it approves through the admin API, and once
// on the /ciba page with a fetch browser (signed in as the user, the form
// whose binding message matches, decision=allow). It also sees a denied
// request rejected with access_denied, an unknown user with
// unknown_user_id, and another user's request kept off the page.
//
// Environment: ISSUER, ADMIN_URL (Caddy's admin endpoint), USERNAME,
// PASSWORD, EXPECTED_EMAIL, OTHER_USERNAME (a second user), BASIC_CLIENT_ID,
// BASIC_CLIENT_SECRET, BASIC_CLIENT_NAME (a poll client with the ciba and
// refresh_token grants), JWT_CLIENT_ID, JWT_PRIVATE_JWK (a private_key_jwt
// poll client's private key as a JWK, with kid). Run by
// tests/interop_ciba_test.go; prints a JSON summary line, then
// 'N passed, N failed', and exits non-zero on any failure.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import * as client from 'openid-client'
import * as jose from 'jose'
import { Browser, parseForms, pageText, decodeEntities } from './browser.mjs'
import { env, step, section, expectGrantError, finish } from './steps.mjs'

const ISSUER = new URL(env('ISSUER'))
const ADMIN_URL = env('ADMIN_URL')
const USERNAME = env('USERNAME')
const PASSWORD = env('PASSWORD')
const EXPECTED_EMAIL = env('EXPECTED_EMAIL')
const OTHER_USERNAME = env('OTHER_USERNAME')
const BASIC_ID = env('BASIC_CLIENT_ID')
const BASIC_SECRET = env('BASIC_CLIENT_SECRET')
const BASIC_NAME = env('BASIC_CLIENT_NAME')
const JWT_ID = env('JWT_CLIENT_ID')
const JWT_JWK = JSON.parse(env('JWT_PRIVATE_JWK'))
const CIBA_GRANT = 'urn:openid:params:grant-type:ciba'
const insecure = { execute: [client.allowInsecureRequests] }

const basic = await client.discovery(ISSUER, BASIC_ID, BASIC_SECRET, client.ClientSecretBasic(BASIC_SECRET), insecure)
const privateKey = { key: await jose.importJWK(JWT_JWK, 'ES256'), kid: JWT_JWK.kid }
const signed = await client.discovery(ISSUER, JWT_ID, undefined, client.PrivateKeyJwt(privateKey), insecure)

/** A binding message unique to this run: the admin API and the page are searched by it. */
function bindingMessage(prefix) {
  return `${prefix} ${randomBytes(3).toString('hex').toUpperCase()}`
}

// ---------------------------------------------------------------------------
// The admin API (Caddy's admin endpoint)

async function admin(method, path) {
  // Node's fetch sends Sec-Fetch-Mode, so Caddy's admin endpoint checks the
  // Origin as it would a browser's: send its own.
  const url = new URL(path, ADMIN_URL)
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json', origin: url.origin } })
  const text = await res.text()
  let body
  try {
    body = JSON.parse(text)
  } catch {
    body = text
  }
  return { status: res.status, body }
}

/** The pending request of user with binding message msg, as the admin API lists it. */
async function pendingRequest(user, msg) {
  const { status, body } = await admin('GET', `/portcullis/ciba?user=${encodeURIComponent(user)}`)
  assert.equal(status, 200, `GET /portcullis/ciba?user=${user}: ${status} ${JSON.stringify(body)}`)
  assert.ok(Array.isArray(body), `GET /portcullis/ciba: not an array: ${JSON.stringify(body)}`)
  const found = body.find((r) => r.binding_message === msg)
  assert.ok(found, `no pending request of ${user} with binding message "${msg}": ${JSON.stringify(body)}`)
  assert.equal(found.user, user)
  assert.equal(found.status, 'pending')
  assert.ok(found.id, 'no id')
  return found
}

/** Approves or denies (decision) request id through the admin API. */
async function decide(id, decision) {
  const { status, body } = await admin('POST', `/portcullis/ciba/${encodeURIComponent(id)}/${decision}`)
  assert.equal(status, 200, `POST /portcullis/ciba/${id}/${decision}: ${status} ${JSON.stringify(body)}`)
  assert.equal(body.status, decision === 'approve' ? 'approved' : 'denied', JSON.stringify(body))
  return body
}

// ---------------------------------------------------------------------------
// The /ciba page, with the fetch browser

/** Fetches url with the browser, following redirects (as GET) within the issuer. */
async function browse(browser, url, init, steps) {
  url = new URL(url)
  let res = await browser.fetch(url, init)
  steps.push(`${init?.method ?? 'GET'} ${url} -> ${res.status}`)
  for (let i = 0; i < 5 && res.status >= 300 && res.status < 400; i++) {
    await res.body?.cancel()
    url = new URL(res.headers.get('location'), url)
    assert.equal(url.origin, ISSUER.origin, `redirected off the issuer to ${url}`)
    res = await browser.fetch(url, { headers: { accept: 'text/html' } })
    steps.push(`GET ${url} -> ${res.status}`)
  }
  return { url, res, html: await res.text() }
}

/** Submits form (its fields as they are) with the browser. */
function submit(browser, form, steps) {
  assert.equal(form.method, 'POST', `form method ${form.method}, want POST`)
  return browse(browser, form.action, {
    method: 'POST',
    headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded', origin: form.action.origin },
    body: form.fields.toString(),
  }, steps)
}

/**
 * The binding message shown for each form of a page: the text of the last
 * class="binding-message" element between the previous form's end and
 * this form's end, so it is found whether the form holds it or the card
 * around the form does.
 */
function bindingMessages(html) {
  const out = []
  let from = 0
  for (const m of html.matchAll(/<\/form\s*>/gi)) {
    const region = html.slice(from, m.index)
    let msg
    for (const b of region.matchAll(/<([a-z0-9]+)\b[^>]*\bclass\s*=\s*"[^"]*\bbinding-message\b[^"]*"[^>]*>([\s\S]*?)<\/\1\s*>/gi)) {
      msg = decodeEntities(b[2].replace(/<[^>]+>/g, '')).trim()
    }
    out.push(msg)
    from = m.index + m[0].length
  }
  return out
}

/**
 * Plays the user at /ciba: signs in, finds the form whose binding message
 * is msg, and submits it with decision. Returns the approval page's text
 * and the final page's.
 */
async function approveOnPage(browser, msg, decision) {
  const steps = []
  const fail = (what) => assert.fail(`/ciba: ${what}\nsteps:\n  ${steps.join('\n  ')}`)
  let { url, res, html } = await browse(browser, new URL('/ciba', ISSUER), { headers: { accept: 'text/html' } }, steps)
  if (res.status !== 200) fail(`status ${res.status}: ${pageText(html)}`)
  let forms = parseForms(html, url)
  const login = forms.find((f) => f.fields.has('password'))
  if (login) {
    login.fields.set('username', USERNAME)
    login.fields.set('password', PASSWORD)
    const b = login.buttons.find((b) => b.name === 'action' && b.value === 'login')
    if (b) login.fields.set(b.name, b.value)
    ;({ url, res, html } = await submit(browser, login, steps))
    if (res.status !== 200) fail(`sign-in answered ${res.status}: ${pageText(html)}`)
    forms = parseForms(html, url)
  }
  if (forms.some((f) => f.fields.has('password'))) fail(`still the sign-in form: ${pageText(html)}`)
  const messages = bindingMessages(html)
  const i = messages.indexOf(msg)
  if (i < 0) fail(`no form with binding message "${msg}" (forms show ${JSON.stringify(messages)}): ${pageText(html)}`)
  const form = forms[i]
  if (!form.fields.get('csrf_token')) fail('the form has no csrf_token')
  if (!form.buttons.some((b) => b.name === 'decision' && b.value === 'allow') || !form.buttons.some((b) => b.name === 'decision' && b.value === 'deny')) {
    fail(`the form lacks decision=allow / decision=deny buttons: ${JSON.stringify(form.buttons)}`)
  }
  const page = pageText(html)
  form.fields.set('decision', decision)
  ;({ res, html } = await submit(browser, form, steps))
  if (res.status !== 200) fail(`the decision answered ${res.status}: ${pageText(html)}`)
  const heading = [...html.matchAll(/<h[1-3]\b[^>]*>([\s\S]*?)<\/h[1-3]>/gi)].map((h) => pageText(h[1])).join(' | ')
  return { page, messages, heading, final: pageText(html) }
}

// ---------------------------------------------------------------------------

await section('discovery', async () => {
  await step('discovery advertises CIBA: endpoint, grant, poll/ping/push', async (record) => {
    const md = basic.serverMetadata()
    assert.equal(md.backchannel_authentication_endpoint, new URL('/bc-authorize', ISSUER).href)
    for (const mode of ['poll', 'ping', 'push']) {
      assert.ok(md.backchannel_token_delivery_modes_supported?.includes(mode), `backchannel_token_delivery_modes_supported: ${md.backchannel_token_delivery_modes_supported}`)
    }
    assert.ok(md.grant_types_supported?.includes(CIBA_GRANT), `grant_types_supported lacks ${CIBA_GRANT}`)
    assert.equal(md.backchannel_user_code_parameter_supported, true)
    record({
      backchannel_authentication_endpoint: md.backchannel_authentication_endpoint,
      modes: md.backchannel_token_delivery_modes_supported,
      request_signing_algs: md.backchannel_authentication_request_signing_alg_values_supported,
    })
  })
})

await section('poll, client_secret_basic, approved through the admin API', async () => {
  const msg = bindingMessage('Kiosk order')
  const response = await step('initiateBackchannelAuthentication', async (record) => {
    const response = await client.initiateBackchannelAuthentication(basic, {
      scope: 'openid profile email offline_access', login_hint: USERNAME, binding_message: msg,
    })
    assert.ok(response.auth_req_id?.length >= 22, `auth_req_id is short: ${response.auth_req_id}`)
    assert.ok(response.expires_in > 0, 'expires_in')
    assert.ok(response.interval >= 1, `interval ${response.interval} in poll mode`)
    record({ expires_in: response.expires_in, interval: response.interval })
    return response
  })

  let request
  const tokens = await step('pollBackchannelAuthenticationGrant gets tokens once the admin API approves', async (record) => {
    // openid-client polls on its own (waiting the interval first) while
    // the request is approved.
    const polling = client.pollBackchannelAuthenticationGrant(basic, response)
    polling.catch(() => {})
    request = await pendingRequest(USERNAME, msg)
    assert.equal(request.client_id, BASIC_ID)
    assert.equal(request.client_name, BASIC_NAME)
    assert.ok(request.scopes.includes('openid') && request.scopes.includes('email'), `scopes ${request.scopes}`)
    assert.ok(request.expires_at, 'no expires_at')
    assert.notEqual(request.id, response.auth_req_id, 'the admin API shows the auth_req_id itself')
    await decide(request.id, 'approve')
    const tokens = await polling
    assert.ok(tokens.access_token, 'no access_token')
    assert.equal(tokens.token_type.toLowerCase(), 'bearer')
    assert.ok(tokens.refresh_token, 'no refresh_token despite offline_access')
    const claims = tokens.claims()
    assert.ok(claims, 'no ID token for scope openid')
    assert.equal(claims.iss, ISSUER.href.replace(/\/$/, ''))
    assert.equal(claims.sub, USERNAME)
    assert.equal(claims.aud, BASIC_ID)
    assert.equal(claims.email, EXPECTED_EMAIL)
    assert.ok(claims.at_hash, 'no at_hash')
    assert.ok(claims.exp > Date.now() / 1000, 'expired ID token')
    record({ scope: tokens.scope, sub: claims.sub, expiresIn: tokens.expiresIn() })
    return tokens
  })

  await step('refresh the CIBA tokens', async (record) => {
    const refreshed = await client.refreshTokenGrant(basic, tokens.refresh_token)
    assert.ok(refreshed.access_token, 'no access_token')
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'refresh token not rotated')
    record({ rotated: true })
  })

  await step('the auth_req_id is spent', async () => {
    await expectGrantError(client.genericGrantRequest(basic, CIBA_GRANT, { auth_req_id: response.auth_req_id }), 'invalid_grant')
  })

  await step('the decided request cannot be decided again (409)', async () => {
    const { status } = await admin('POST', `/portcullis/ciba/${encodeURIComponent(request.id)}/approve`)
    assert.equal(status, 409)
  })
})

await section('poll, private_key_jwt, approved on the /ciba page', async () => {
  const msg = bindingMessage('Call centre case')
  const othersMsg = bindingMessage('For someone else')
  const browser = new Browser()

  await step(`a request for ${OTHER_USERNAME}, as the other client`, async () => {
    await client.initiateBackchannelAuthentication(basic, { scope: 'openid', login_hint: OTHER_USERNAME, binding_message: othersMsg })
  })

  const response = await step('initiateBackchannelAuthentication with private_key_jwt', async (record) => {
    const response = await client.initiateBackchannelAuthentication(signed, { scope: 'openid email', login_hint: USERNAME, binding_message: msg })
    record({ expires_in: response.expires_in, interval: response.interval })
    return response
  })

  await step('pollBackchannelAuthenticationGrant gets tokens once the user approves on /ciba', async (record) => {
    const polling = client.pollBackchannelAuthenticationGrant(signed, response)
    polling.catch(() => {})
    const page = await approveOnPage(browser, msg, 'allow')
    assert.ok(page.page.includes('Call Centre'), `the approval page does not name the client: ${page.page}`)
    assert.ok(!page.page.includes(othersMsg), `alice's page shows ${OTHER_USERNAME}'s request: ${page.page}`)
    assert.match(page.heading, /Approved/, `final page: ${page.final}`)
    const tokens = await polling
    const claims = tokens.claims()
    assert.ok(claims, 'no ID token for scope openid')
    assert.equal(claims.sub, USERNAME)
    assert.equal(claims.aud, JWT_ID)
    assert.equal(claims.email, EXPECTED_EMAIL)
    assert.equal(tokens.refresh_token, undefined, 'a refresh token without the refresh_token grant')
    record({ forms: page.messages.length, heading: page.heading, sub: claims.sub })
  })

  await step(`${OTHER_USERNAME}'s request is still pending`, async () => {
    await pendingRequest(OTHER_USERNAME, othersMsg)
  })

  await step('with nothing pending, the page says so', async () => {
    const steps = []
    const { res, html } = await browse(browser, new URL('/ciba', ISSUER), { headers: { accept: 'text/html' } }, steps)
    assert.equal(res.status, 200, steps.join('; '))
    assert.match(pageText(html), /No pending requests/, pageText(html))
  })
})

await section('poll, denied', async () => {
  await step('pollBackchannelAuthenticationGrant rejects with access_denied', async (record) => {
    const msg = bindingMessage('Refund')
    const response = await client.initiateBackchannelAuthentication(basic, { scope: 'openid', login_hint: USERNAME, binding_message: msg })
    const polling = client.pollBackchannelAuthenticationGrant(basic, response)
    // It may reject before the assertion below: mark it handled now.
    polling.catch(() => {})
    await decide((await pendingRequest(USERNAME, msg)).id, 'deny')
    await expectGrantError(polling, 'access_denied')
    record({ denied: true })
  })
})

await section('refusals at /bc-authorize', async () => {
  await step('an unknown user is unknown_user_id', async () => {
    await expectGrantError(client.initiateBackchannelAuthentication(basic, { scope: 'openid', login_hint: `nobody-${randomBytes(4).toString('hex')}` }), 'unknown_user_id')
  })
  await step('no hint at all is invalid_request', async () => {
    await expectGrantError(client.initiateBackchannelAuthentication(basic, { scope: 'openid' }), 'invalid_request')
  })
  await step('no openid scope is invalid_request or invalid_scope', async () => {
    await assert.rejects(client.initiateBackchannelAuthentication(basic, { scope: 'email', login_hint: USERNAME }), (err) => {
      assert.ok(err instanceof client.ResponseBodyError, `want ResponseBodyError, got ${err?.name}: ${err?.message}`)
      assert.ok(['invalid_request', 'invalid_scope'].includes(err.error), err.error)
      return true
    })
  })
})

finish()
