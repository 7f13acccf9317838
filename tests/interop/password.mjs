// Interop test of the resource owner password grant: the certified
// openid-client library (v6) signs a user in with its generic grant
// request, refreshes, reads userinfo, and sees a wrong password refused.
//
// Environment: ISSUER, USERNAME, PASSWORD, EXPECTED_EMAIL, CLIENT_ID,
// CLIENT_SECRET. Run by tests/password_test.go.

import assert from 'node:assert/strict'
import * as client from 'openid-client'
import { env, step, section, expectGrantError, finish } from './steps.mjs'

const USERNAME = env('USERNAME')
const PASSWORD = env('PASSWORD')
const insecure = { execute: [client.allowInsecureRequests] }

await section('password grant', async () => {
  const config = await step('discovery lists the password grant', async () => {
    const config = await client.discovery(new URL(env('ISSUER')), env('CLIENT_ID'), env('CLIENT_SECRET'),
      client.ClientSecretBasic(env('CLIENT_SECRET')), insecure)
    assert.ok(config.serverMetadata().grant_types_supported?.includes('password'), 'grant_types_supported lacks password')
    return config
  })

  const tokens = await step('password grant: tokens with an ID token and a refresh token', async (record) => {
    const tokens = await client.genericGrantRequest(config, 'password', {
      username: USERNAME,
      password: PASSWORD,
      scope: 'openid email offline_access',
    })
    assert.ok(tokens.access_token, 'no access_token')
    assert.ok(tokens.refresh_token, 'no refresh_token with offline_access')
    const claims = tokens.claims()
    assert.ok(claims, 'no ID token')
    assert.equal(claims.sub, USERNAME)
    assert.equal(claims.email, env('EXPECTED_EMAIL'))
    record({ claims, scope: tokens.scope })
    return tokens
  })

  await step('userinfo with the access token', async (record) => {
    const info = await client.fetchUserInfo(config, tokens.access_token, USERNAME)
    assert.equal(info.email, env('EXPECTED_EMAIL'))
    record(info)
  })

  await step('refresh rotates the refresh token', async () => {
    const next = await client.refreshTokenGrant(config, tokens.refresh_token)
    assert.ok(next.access_token, 'no access_token')
    assert.ok(next.refresh_token && next.refresh_token !== tokens.refresh_token, 'refresh token not rotated')
  })

  await step('a wrong password is invalid_grant', async () => {
    await expectGrantError(
      client.genericGrantRequest(config, 'password', { username: USERNAME, password: 'not the password', scope: 'openid' }),
      'invalid_grant',
    )
  })
})

finish()
