// Interop test of JWT client authentication (RFC 7523, OIDC Core §9): the
// certified openid-client library (v6) authenticates with private_key_jwt
// and client_secret_jwt, gets a client credentials token, introspects and
// revokes it, and sees a replayed assertion (fixed jti), one for another
// audience and one with the wrong secret refused with invalid_client.
//
// Environment: ISSUER, API_AUDIENCE, SIGNER_CLIENT_ID, SIGNER_PRIVATE_JWK
// (the private key as a JWK, with kid), MAC_CLIENT_ID, MAC_CLIENT_SECRET.
// Run by tests/interop_private_key_jwt_test.go.

import assert from 'node:assert/strict'
import * as client from 'openid-client'
import * as jose from 'jose'
import { env, step, section, expectGrantError, finish } from './steps.mjs'

const ISSUER = new URL(env('ISSUER'))
const API_AUDIENCE = env('API_AUDIENCE')
const SIGNER_ID = env('SIGNER_CLIENT_ID')
const SIGNER_JWK = JSON.parse(env('SIGNER_PRIVATE_JWK'))
const MAC_ID = env('MAC_CLIENT_ID')
const MAC_SECRET = env('MAC_CLIENT_SECRET')
const insecure = { execute: [client.allowInsecureRequests] }
const privateKey = { key: await jose.importJWK(SIGNER_JWK, 'ES256'), kid: SIGNER_JWK.kid }

/** The client configuration of clientId authenticating with auth. */
function configure(clientId, secret, auth) {
  return client.discovery(ISSUER, clientId, secret, auth, insecure)
}

/** Client credentials, introspection and revocation as one client. */
async function lifecycle(label, config, clientId) {
  const tokens = await step(`${label}: client credentials`, async (record) => {
    const tokens = await client.clientCredentialsGrant(config, { audience: API_AUDIENCE, scope: 'read:items' })
    assert.ok(tokens.access_token, 'no access_token')
    assert.equal(tokens.token_type.toLowerCase(), 'bearer')
    record({ scope: tokens.scope })
    return tokens
  })
  await step(`${label}: introspection`, async (record) => {
    const info = await client.tokenIntrospection(config, tokens.access_token)
    assert.equal(info.active, true, `inactive: ${JSON.stringify(info)}`)
    assert.equal(info.client_id, clientId)
    record({ active: info.active, client_id: info.client_id })
  })
  await step(`${label}: revocation`, async () => {
    await client.tokenRevocation(config, tokens.access_token)
    const info = await client.tokenIntrospection(config, tokens.access_token)
    assert.equal(info.active, false, `revoked token still active: ${JSON.stringify(info)}`)
  })
}

await section('discovery', async () => {
  await step('discovery advertises private_key_jwt and client_secret_jwt', async (record) => {
    const md = (await configure(SIGNER_ID, undefined, client.None())).serverMetadata()
    for (const member of ['token_endpoint_auth_methods_supported', 'introspection_endpoint_auth_methods_supported',
      'revocation_endpoint_auth_methods_supported']) {
      assert.ok(md[member]?.includes('private_key_jwt'), `${member}: ${md[member]}`)
      assert.ok(md[member]?.includes('client_secret_jwt'), `${member}: ${md[member]}`)
    }
    assert.ok(md.token_endpoint_auth_signing_alg_values_supported?.includes('ES256'))
    record({ algs: md.token_endpoint_auth_signing_alg_values_supported })
  })
})

await section('private_key_jwt', async () => {
  await lifecycle('private_key_jwt', await configure(SIGNER_ID, undefined, client.PrivateKeyJwt(privateKey)), SIGNER_ID)
})

await section('client_secret_jwt', async () => {
  await lifecycle('client_secret_jwt', await configure(MAC_ID, MAC_SECRET, client.ClientSecretJwt(MAC_SECRET)), MAC_ID)
})

await section('refusals', async () => {
  await step('private_key_jwt: a replayed assertion (same jti) is refused', async () => {
    const jti = `replay-${Date.now()}`
    const fixedJTI = { [client.modifyAssertion]: (_header, payload) => { payload.jti = jti } }
    const config = await configure(SIGNER_ID, undefined, client.PrivateKeyJwt(privateKey, fixedJTI))
    await client.clientCredentialsGrant(config, { audience: API_AUDIENCE })
    await expectGrantError(client.clientCredentialsGrant(config, { audience: API_AUDIENCE }), 'invalid_client')
  })
  await step('client_secret_jwt: an assertion for another audience is refused', async () => {
    const elsewhere = { [client.modifyAssertion]: (_header, payload) => { payload.aud = 'https://elsewhere.example.com' } }
    const config = await configure(MAC_ID, MAC_SECRET, client.ClientSecretJwt(MAC_SECRET, elsewhere))
    await expectGrantError(client.clientCredentialsGrant(config, { audience: API_AUDIENCE }), 'invalid_client')
  })
  await step('client_secret_jwt: the wrong secret is refused', async () => {
    const wrong = 'not-the-secret-but-long-enough-for-hs256-0123456789'
    const config = await configure(MAC_ID, wrong, client.ClientSecretJwt(wrong))
    await expectGrantError(client.clientCredentialsGrant(config, { audience: API_AUDIENCE }), 'invalid_client')
  })
})

finish()
