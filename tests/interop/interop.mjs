// Interop test: drives a running Portcullis gateway with openid-client (v6)
// through its public API only. The browser part of the authorization code
// flow (login and consent forms) is done here with fetch.
//
// Environment: ISSUER, USERNAME, PASSWORD, EXPECTED_EMAIL, EXPECTED_NAME,
// WEBAPP_CLIENT_ID, WEBAPP_CLIENT_SECRET, WEBAPP_REDIRECT_URI, SPA_CLIENT_ID,
// SPA_REDIRECT_URI, BACKEND_CLIENT_ID, BACKEND_CLIENT_SECRET, API_AUDIENCE.
// Run by tests/interop_test.go; prints a JSON summary line, then
// 'N passed, N failed', and exits non-zero on any failure.

import assert from 'node:assert/strict'
import * as client from 'openid-client'
import * as jose from 'jose'
import { Browser, parseForms, pageText } from './browser.mjs'
import { env, step, section, expectGrantError, finish } from './steps.mjs'

const ISSUER = env('ISSUER')
const USERNAME = env('USERNAME')
const PASSWORD = env('PASSWORD')
const EXPECTED_EMAIL = env('EXPECTED_EMAIL')
const EXPECTED_NAME = process.env.EXPECTED_NAME || ''
const WEBAPP = {
  id: env('WEBAPP_CLIENT_ID'),
  secret: env('WEBAPP_CLIENT_SECRET'),
  redirectUri: env('WEBAPP_REDIRECT_URI'),
}
const SPA = { id: env('SPA_CLIENT_ID'), redirectUri: env('SPA_REDIRECT_URI') }
const BACKEND = { id: env('BACKEND_CLIENT_ID'), secret: env('BACKEND_CLIENT_SECRET') }
const API_AUDIENCE = env('API_AUDIENCE')

/**
 * Drives the browser part of an authorization request: GET the
 * authorization URL, submit the login form if shown, allow the consent form
 * if shown, follow redirects within the server, and stop at the redirect to
 * redirectUri.
 */
async function authorize(browser, authorizationUrl, redirectUri, { username, password }) {
  const target = new URL(redirectUri)
  const isCallback = (u) => u.origin === target.origin && u.pathname === target.pathname
  const result = { callbackUrl: undefined, sawLogin: false, sawConsent: false, steps: [] }
  let method = 'GET'
  let url = new URL(authorizationUrl)
  let body
  let referer
  let loginSubmitted = false
  const fail = (msg) => {
    throw new Error(`authorization flow: ${msg}\nsteps:\n  ${result.steps.join('\n  ')}`)
  }
  for (let i = 0; i < 12; i++) {
    const headers = { accept: 'text/html' }
    if (method === 'POST') {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      headers.origin = url.origin
      if (referer) headers.referer = referer
    }
    const res = await browser.fetch(url, { method, headers, body })
    const location = res.headers.get('location')
    result.steps.push(`${method} ${url} -> ${res.status} ${location ?? ''}`)
    if (res.status >= 300 && res.status < 400) {
      await res.arrayBuffer()
      if (!location) fail(`${res.status} without Location`)
      const next = new URL(location, url)
      if (isCallback(next)) {
        result.callbackUrl = next
        return result
      }
      method = 'GET'
      url = next
      body = undefined
      referer = undefined
      continue
    }
    const html = await res.text()
    if (res.status !== 200) fail(`unexpected status ${res.status}: ${pageText(html)}`)
    let chosen
    for (const f of parseForms(html, url)) {
      if (f.fields.has('password')) {
        if (loginSubmitted) fail(`login form shown again after submitting credentials: ${pageText(html)}`)
        f.fields.set('username', username)
        f.fields.set('password', password)
        const b = f.buttons.find((b) => b.name === 'action' && b.value === 'login')
        if (b) f.fields.set(b.name, b.value)
        loginSubmitted = result.sawLogin = true
        chosen = f
        break
      }
      if (f.buttons.some((b) => b.name === 'decision')) {
        const b = f.buttons.find((b) => b.name === 'decision' && b.value === 'allow')
        if (!b) fail('consent form without decision=allow')
        f.fields.set(b.name, b.value)
        result.sawConsent = true
        chosen = f
        break
      }
    }
    if (!chosen) fail(`200 page with neither a login nor a consent form: ${pageText(html)}`)
    if (chosen.method !== 'POST') fail(`form method ${chosen.method}, want POST`)
    method = 'POST'
    referer = url.href
    url = chosen.action
    body = chosen.fields.toString()
  }
  fail('no redirect to the client after 12 requests')
}

const issuerUrl = new URL(ISSUER)
const insecure = { execute: [client.allowInsecureRequests] }
const insecureNonRepudiation = { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] }
const browser = new Browser()
const state = {}

await section('discovery', async () => {
  await step('discovery', async (record) => {
    const config = await client.discovery(issuerUrl, WEBAPP.id, WEBAPP.secret, client.ClientSecretBasic(WEBAPP.secret), insecure)
    const md = config.serverMetadata()
    assert.equal(md.issuer, ISSUER)
    for (const k of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint', 'introspection_endpoint', 'revocation_endpoint']) {
      assert.ok(md[k], `discovery lacks ${k}`)
    }
    assert.ok(md.code_challenge_methods_supported?.includes('S256'), 'S256 PKCE not advertised')
    assert.ok(md.response_types_supported?.includes('code'), 'response_type code not advertised')
    assert.ok(md.id_token_signing_alg_values_supported?.includes('ES256'), 'ES256 not advertised')
    state.metadata = md
    record({ endpoints: Object.fromEntries(Object.entries(md).filter(([k]) => k.endsWith('_endpoint') || k === 'jwks_uri')) })
  })
})

await section('webapp', async () => {
  const config = await client.discovery(
    issuerUrl,
    WEBAPP.id,
    { client_secret: WEBAPP.secret },
    client.ClientSecretBasic(WEBAPP.secret),
    insecureNonRepudiation,
  )

  const tokens = await step('webapp: authorization code + PKCE (S256), state, nonce', async (record) => {
    const codeVerifier = client.randomPKCECodeVerifier()
    const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier)
    const expectedState = client.randomState()
    const expectedNonce = client.randomNonce()
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: WEBAPP.redirectUri,
      scope: 'openid profile email offline_access',
      code_challenge: codeChallenge,
      code_challenge_method: 'S256',
      state: expectedState,
      nonce: expectedNonce,
      // OIDC Core section 11: offline_access is granted with prompt=consent.
      prompt: 'consent',
    })
    const flow = await authorize(browser, url, WEBAPP.redirectUri, { username: USERNAME, password: PASSWORD })
    assert.ok(flow.sawLogin, 'the login form was not shown on a fresh browser')
    assert.equal(flow.callbackUrl.searchParams.get('iss'), ISSUER, 'callback lacks iss')
    const tokens = await client.authorizationCodeGrant(config, flow.callbackUrl, {
      pkceCodeVerifier: codeVerifier,
      expectedState,
      expectedNonce,
      idTokenExpected: true,
    })
    assert.ok(tokens.access_token, 'no access_token')
    assert.ok(tokens.refresh_token, 'no refresh_token despite offline_access')
    assert.equal(tokens.token_type.toLowerCase(), 'bearer')
    assert.ok(tokens.expiresIn() > 0, 'expires_in missing')
    record({ sawLogin: flow.sawLogin, sawConsent: flow.sawConsent, scope: tokens.scope, expiresIn: tokens.expiresIn() })
    return tokens
  })

  await step('webapp: pushed authorization request (PAR, RFC 9126)', async (record) => {
    const codeVerifier = client.randomPKCECodeVerifier()
    const expectedState = client.randomState()
    const url = await client.buildAuthorizationUrlWithPAR(config, {
      redirect_uri: WEBAPP.redirectUri,
      scope: 'openid email',
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state: expectedState,
    })
    assert.ok(url.searchParams.get('request_uri')?.startsWith('urn:ietf:params:oauth:request_uri:'), `no request_uri in ${url}`)
    assert.equal(url.searchParams.get('scope'), null, 'PAR URL still carries the parameters')
    const flow = await authorize(browser, url, WEBAPP.redirectUri, { username: USERNAME, password: PASSWORD })
    const pushed = await client.authorizationCodeGrant(config, flow.callbackUrl, { pkceCodeVerifier: codeVerifier, expectedState })
    assert.equal(pushed.claims()?.email, EXPECTED_EMAIL)
    record({ requestUri: url.searchParams.get('request_uri').slice(0, 40) + '…', scope: pushed.scope })
  })

  const claims = await step('webapp: ID token claims', async (record) => {
    const claims = tokens.claims()
    assert.ok(claims, 'no ID token claims')
    assert.equal(claims.iss, ISSUER)
    assert.ok(typeof claims.sub === 'string' && claims.sub.length > 0, 'sub missing')
    assert.equal(claims.email, EXPECTED_EMAIL)
    state.sub = claims.sub
    record({ sub: claims.sub, email: claims.email, aud: claims.aud })
    return claims
  })

  await step('webapp: userinfo', async (record) => {
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
    assert.equal(info.sub, claims.sub)
    assert.equal(info.email, EXPECTED_EMAIL)
    if (EXPECTED_NAME) assert.equal(info.name, EXPECTED_NAME)
    record({ sub: info.sub, email: info.email, name: info.name })
  })

  await step('webapp: introspection of access and refresh tokens', async (record) => {
    const at = await client.tokenIntrospection(config, tokens.access_token, { token_type_hint: 'access_token' })
    assert.equal(at.active, true, `access token inactive: ${JSON.stringify(at)}`)
    if (at.client_id !== undefined) assert.equal(at.client_id, WEBAPP.id)
    if (at.sub !== undefined) assert.equal(at.sub, claims.sub)
    const rt = await client.tokenIntrospection(config, tokens.refresh_token, { token_type_hint: 'refresh_token' })
    assert.equal(rt.active, true, `refresh token inactive: ${JSON.stringify(rt)}`)
    record({ accessToken: at, refreshToken: { active: rt.active, client_id: rt.client_id } })
  })

  const refreshed = await step('webapp: refresh token rotation', async (record) => {
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
    assert.ok(refreshed.access_token, 'no access_token')
    assert.ok(refreshed.refresh_token, 'no new refresh_token')
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'refresh token not rotated')
    const rt = await client.tokenIntrospection(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' })
    assert.equal(rt.active, true, `new refresh token inactive: ${JSON.stringify(rt)}`)
    record({ rotated: true, idToken: Boolean(refreshed.id_token) })
    return refreshed
  })

  await step('webapp: revocation of the refresh token', async (record) => {
    await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' })
    const rt = await client.tokenIntrospection(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' })
    assert.equal(rt.active, false, `revoked refresh token still active: ${JSON.stringify(rt)}`)
    await expectGrantError(client.refreshTokenGrant(config, refreshed.refresh_token), 'invalid_grant')
  })

  await step('webapp: rotated-out refresh token refused', async (record) => {
    await expectGrantError(client.refreshTokenGrant(config, tokens.refresh_token), 'invalid_grant')
  })
})

await section('spa', async () => {
  const config = await client.discovery(issuerUrl, SPA.id, undefined, client.None(), insecureNonRepudiation)
  await step('spa: public client, PKCE, SSO session reused', async (record) => {
    const codeVerifier = client.randomPKCECodeVerifier()
    const expectedState = client.randomState()
    const expectedNonce = client.randomNonce()
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: SPA.redirectUri,
      scope: 'openid',
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state: expectedState,
      nonce: expectedNonce,
    })
    const flow = await authorize(browser, url, SPA.redirectUri, { username: USERNAME, password: PASSWORD })
    assert.equal(flow.sawLogin, false, `login form shown despite the SSO session:\n  ${flow.steps.join('\n  ')}`)
    const tokens = await client.authorizationCodeGrant(config, flow.callbackUrl, {
      pkceCodeVerifier: codeVerifier,
      expectedState,
      expectedNonce,
      idTokenExpected: true,
    })
    assert.ok(tokens.access_token, 'no access_token')
    const claims = tokens.claims()
    const subjects = state.metadata?.subject_types_supported ?? ['public']
    if (state.sub && !subjects.includes('pairwise')) assert.equal(claims.sub, state.sub, 'same user, different sub')
    record({ sawLogin: flow.sawLogin, sawConsent: flow.sawConsent, sub: claims.sub, refreshToken: Boolean(tokens.refresh_token) })
  })
})

await section('backend', async () => {
  const config = await client.discovery(
    issuerUrl,
    BACKEND.id,
    { client_secret: BACKEND.secret },
    client.ClientSecretPost(BACKEND.secret),
    insecure,
  )
  const tokens = await step('backend: client credentials (client_secret_post)', async (record) => {
    const tokens = await client.clientCredentialsGrant(config, { audience: API_AUDIENCE, scope: 'read:items' })
    assert.ok(tokens.access_token, 'no access_token')
    assert.equal(tokens.token_type.toLowerCase(), 'bearer')
    assert.equal(tokens.refresh_token, undefined, 'client credentials must not return a refresh token')
    assert.equal(tokens.id_token, undefined, 'client credentials must not return an ID token')
    record({ scope: tokens.scope, expiresIn: tokens.expiresIn() })
    return tokens
  })

  await step('backend: JWT access token (RFC 9068) verifies against the JWKS', async (record) => {
    const jwks = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri))
    const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, jwks, {
      issuer: ISSUER,
      audience: API_AUDIENCE,
      typ: 'at+jwt',
    })
    assert.equal(protectedHeader.typ, 'at+jwt')
    assert.equal(protectedHeader.alg, 'ES256')
    for (const k of ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti']) {
      assert.ok(payload[k] !== undefined, `RFC 9068 claim ${k} missing`)
    }
    assert.equal(payload.client_id, BACKEND.id)
    assert.ok(String(payload.scope ?? '').split(' ').includes('read:items'), `scope ${payload.scope}`)
    assert.ok(!String(payload.scope ?? '').split(' ').includes('write:items'), 'scope broader than requested')
    record({ header: protectedHeader, claims: payload })
  })

  await step('backend: introspection of the JWT access token', async (record) => {
    const info = await client.tokenIntrospection(config, tokens.access_token)
    assert.equal(info.active, true, `inactive: ${JSON.stringify(info)}`)
    if (info.client_id !== undefined) assert.equal(info.client_id, BACKEND.id)
    record(info)
  })
})

finish()
