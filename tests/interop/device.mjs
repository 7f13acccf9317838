// Interop test of the Device Authorization Grant (RFC 8628): the certified
// openid-client library (v6) asks for a device code and polls the token
// endpoint with its own loop (interval, slow_down), while this script plays
// the user on another device: it opens verification_uri_complete with a
// fetch browser, signs in and approves (then, for a second code, denies).
//
// Environment: ISSUER, USERNAME, PASSWORD, CLIENT_ID (a public client with
// the device_code and refresh_token grants), CLIENT_NAME. Run by
// tests/interop_device_test.go; prints a JSON summary line, then
// 'N passed, N failed', and exits non-zero on any failure.

import assert from 'node:assert/strict'
import * as client from 'openid-client'
import { Browser, parseForms, pageText } from './browser.mjs'
import { env, step, section, expectGrantError, finish } from './steps.mjs'

const USERNAME = env('USERNAME')
const PASSWORD = env('PASSWORD')
const CLIENT_ID = env('CLIENT_ID')
const CLIENT_NAME = env('CLIENT_NAME')
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
const insecure = { execute: [client.allowInsecureRequests] }

/**
 * Plays the user at the verification page: opens startUrl, enters userCode
 * unless the form is pre-filled with it, signs in when asked, and submits
 * the confirmation with decision. Returns the text of the confirmation and
 * of the final page.
 */
async function verify(browser, startUrl, userCode, decision) {
  let url = new URL(startUrl)
  let res = await browser.fetch(url, { headers: { accept: 'text/html' } })
  const steps = [`GET ${url} -> ${res.status}`]
  const fail = (msg) => {
    throw new Error(`verification page: ${msg}\nsteps:\n  ${steps.join('\n  ')}`)
  }
  let confirmation
  for (let i = 0; i < 4; i++) {
    const html = await res.text()
    if (res.status !== 200) fail(`status ${res.status}: ${pageText(html)}`)
    if (confirmation !== undefined) return { confirmation, final: pageText(html) }
    const forms = parseForms(html, url)
    if (forms.length !== 1) fail(`want one form, got ${forms.length}: ${pageText(html)}`)
    const f = forms[0]
    if (f.fields.has('user_code')) {
      const prefilled = f.fields.get('user_code')
      if (prefilled && prefilled !== userCode) fail(`pre-filled with ${prefilled}, want ${userCode}`)
      f.fields.set('user_code', userCode)
    } else if (f.fields.has('password')) {
      f.fields.set('username', USERNAME)
      f.fields.set('password', PASSWORD)
      const b = f.buttons.find((b) => b.name === 'action' && b.value === 'login')
      if (b) f.fields.set(b.name, b.value)
    } else if (f.buttons.some((b) => b.name === 'decision' && b.value === decision)) {
      f.fields.set('decision', decision)
      confirmation = pageText(html)
    } else {
      fail(`unexpected page: ${pageText(html)}`)
    }
    if (f.method !== 'POST') fail(`form method ${f.method}, want POST`)
    url = f.action
    res = await browser.fetch(url, {
      method: 'POST',
      headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded', origin: url.origin },
      body: f.fields.toString(),
    })
    steps.push(`POST ${url} -> ${res.status}`)
  }
  fail('no final page after the confirmation')
}

const config = await client.discovery(new URL(env('ISSUER')), CLIENT_ID, undefined, client.None(), insecure)
const browser = new Browser()

await section('device flow, approved', async () => {
  await step('discovery advertises the device authorization endpoint and grant', async (record) => {
    const md = config.serverMetadata()
    assert.ok(md.device_authorization_endpoint, 'no device_authorization_endpoint')
    assert.ok(md.grant_types_supported?.includes(DEVICE_GRANT), `grant_types_supported lacks ${DEVICE_GRANT}`)
    record({ device_authorization_endpoint: md.device_authorization_endpoint })
  })

  const response = await step('initiateDeviceAuthorization', async (record) => {
    const response = await client.initiateDeviceAuthorization(config, { scope: 'openid profile offline_access' })
    assert.match(response.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/, 'user_code is not XXXX-XXXX of the RFC 8628 §6.1 alphabet')
    assert.ok(response.device_code.length >= 43, 'device_code is short')
    assert.ok(response.verification_uri_complete.startsWith(response.verification_uri + '?'), 'verification_uri_complete')
    assert.ok(response.expires_in > 0 && response.interval > 0, 'expires_in or interval missing')
    record({ user_code: response.user_code, verification_uri: response.verification_uri, interval: response.interval, expires_in: response.expires_in })
    return response
  })

  const tokens = await step('pollDeviceAuthorizationGrant gets tokens once the user approves', async (record) => {
    // openid-client polls on its own (waiting the interval first) while
    // the user approves on the other device.
    const polling = client.pollDeviceAuthorizationGrant(config, response)
    const page = await verify(browser, response.verification_uri_complete, response.user_code, 'allow')
    assert.ok(page.confirmation.includes(CLIENT_NAME), `the confirmation page does not name ${CLIENT_NAME}`)
    assert.ok(page.confirmation.includes(response.user_code), 'the confirmation page does not show the user code')
    assert.ok(page.final.includes('return to your device'), `final page: ${page.final}`)
    const tokens = await polling
    assert.ok(tokens.access_token, 'no access_token')
    assert.equal(tokens.token_type.toLowerCase(), 'bearer')
    assert.ok(tokens.refresh_token, 'no refresh_token despite offline_access')
    const claims = tokens.claims()
    assert.ok(claims, 'no ID token for scope openid')
    assert.equal(claims.sub, USERNAME)
    assert.equal(claims.aud, CLIENT_ID)
    record({ scope: tokens.scope, sub: claims.sub, expiresIn: tokens.expiresIn() })
    return tokens
  })

  await step('refresh the device tokens', async (record) => {
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
    assert.ok(refreshed.access_token, 'no access_token')
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'refresh token not rotated')
    record({ rotated: true })
  })

  await step('the device code is spent', async () => {
    await expectGrantError(client.genericGrantRequest(config, DEVICE_GRANT, { device_code: response.device_code }), 'invalid_grant')
  })
})

await section('device flow, denied', async () => {
  await step('pollDeviceAuthorizationGrant rejects with access_denied', async (record) => {
    const response = await client.initiateDeviceAuthorization(config, { scope: 'openid' })
    const polling = client.pollDeviceAuthorizationGrant(config, response)
    // It may reject while the page is still being read: mark it handled
    // now, and check how it rejected below.
    polling.catch(() => {})
    // The user types the code at verification_uri, in lower case.
    const page = await verify(browser, response.verification_uri, response.user_code.toLowerCase(), 'deny')
    assert.ok(page.final.includes('denied'), `final page: ${page.final}`)
    await expectGrantError(polling, 'access_denied')
    record({ user_code: response.user_code })
  })
})

finish()
