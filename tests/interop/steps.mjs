// The step runner shared by the interop scripts: named steps grouped in
// sections, a JSON summary line and 'N passed, N failed' at the end, and a
// non-zero exit on any failure.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import * as client from 'openid-client'

/** Returns the required environment variable name, or throws. */
export function env(name) {
  const v = process.env[name]
  if (!v) throw new Error(`environment variable ${name} is required`)
  return v
}

const summary = {
  issuer: process.env.ISSUER,
  node: process.version,
  openidClient: JSON.parse(readFileSync(new URL('./node_modules/openid-client/package.json', import.meta.url), 'utf8')).version,
  jose: JSON.parse(readFileSync(new URL('./node_modules/jose/package.json', import.meta.url), 'utf8')).version,
  steps: [],
}
let failed = 0

/**
 * Runs one step: fn gets a record(detail) function for the summary and its
 * result is returned. A failure is recorded and rethrown as StepFailed.
 */
export async function step(name, fn) {
  const started = Date.now()
  let detail
  try {
    const result = await fn((d) => {
      detail = d
    })
    summary.steps.push({ name, ok: true, ms: Date.now() - started, ...(detail ? { detail } : {}) })
    console.log(`ok   ${name}`)
    return result
  } catch (err) {
    failed++
    const error = describe(err)
    summary.steps.push({ name, ok: false, ms: Date.now() - started, error })
    console.log(`FAIL ${name}: ${error.message}`)
    if (error.body || error.cause) console.log(`     ${JSON.stringify({ status: error.status, body: error.body, cause: error.cause })}`)
    throw new StepFailed(name, { cause: err })
  }
}

class StepFailed extends Error {}

function describe(err) {
  const out = { name: err?.name, message: String(err?.message ?? err) }
  if (err?.code) out.code = err.code
  if (err?.error) out.error = err.error
  if (err?.status) out.status = err.status
  if (err?.cause && typeof err.cause === 'object') {
    out.body = err.cause.error ? err.cause : undefined
    if (!out.body) out.cause = String(err.cause?.message ?? err.cause)
  }
  return out
}

/** Runs one section of steps; a failed step skips the rest of its section. */
export async function section(name, fn) {
  try {
    await fn()
  } catch (err) {
    if (!(err instanceof StepFailed)) {
      failed++
      summary.steps.push({ name: `${name} (section)`, ok: false, error: describe(err) })
      console.log(`FAIL ${name}: ${err?.stack ?? err}`)
    }
  }
}

/** Expects promise to reject with an OAuth error response carrying expected. */
export async function expectGrantError(promise, expected) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof client.ResponseBodyError, `want ResponseBodyError, got ${err?.name}: ${err?.message}`)
    assert.equal(err.error, expected)
    return true
  })
}

/** Prints the summary and exits: non-zero when any step failed. */
export function finish() {
  summary.passed = summary.steps.filter((s) => s.ok).length
  summary.failed = failed
  console.log(JSON.stringify(summary))
  console.log(`${summary.passed} passed, ${failed} failed`)
  process.exit(failed > 0 ? 1 : 0)
}
