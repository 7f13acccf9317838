// An external OpenID Provider for Portcullis' end-to-end tests: panva's
// oidc-provider (v9), configured entirely from environment variables, with its
// development login/consent pages ("devInteractions").
//
// Environment:
//   PORT           port to listen on (127.0.0.1 only); required.
//   ISSUER         issuer identifier; default http://127.0.0.1:PORT.
//   CLIENTS_JSON   JSON array of client metadata objects, passed to
//                  oidc-provider's `clients` option unchanged (snake_case
//                  registration metadata: client_id, client_secret,
//                  redirect_uris, post_logout_redirect_uris, response_types,
//                  grant_types, token_endpoint_auth_method,
//                  backchannel_logout_uri, backchannel_logout_session_required,
//                  id_token_signed_response_alg, ...); default [].
//   ACCOUNTS_JSON  JSON object: login id -> claims (sub, email,
//                  email_verified, name, preferred_username, groups, ...);
//                  default {}. The account's subject is its `sub` claim,
//                  or the login id when it has none.
//   ACCESS_TOKEN_TTL  access token lifetime in seconds (client_credentials
//                  tokens too); default 3600.
//   ROTATE_REFRESH_TOKENS  "true" to issue a new refresh token with every
//                  refresh; default: oidc-provider's policy, which keeps a
//                  confidential client's refresh token until 70% of its
//                  lifetime has passed.
//   ISS_WITH_ID_TOKEN  "true" to put iss (RFC 9207) in authorization
//                  responses that carry an ID token too (hybrid
//                  "code id_token" ones); default: oidc-provider leaves it
//                  out of those, whose ID token's iss claim names the issuer.
//   REQUIRE_PAR    "true" to require pushed authorization requests (RFC
//                  9126) of every client; discovery then says
//                  require_pushed_authorization_requests. A single client
//                  can require them with its
//                  require_pushed_authorization_requests metadata.
//   CONFORM_ID_TOKEN_CLAIMS  "true" to put scope claims (email, name...) in
//                  the userinfo response only when an access token is
//                  issued, as OIDC Core 5.4 says; default false: ID tokens
//                  carry every claim the granted scopes allow.
//   RESOURCE_SERVERS_JSON  JSON object: resource indicator (RFC 8707) ->
//                  { "scope": "<space-separated scopes>", "format": "jwt" |
//                  "opaque", "alg": "ES256" | "RS256" (JWT signing; default
//                  ES256), "audience": <aud; default the indicator>,
//                  "accessTokenTTL": <seconds> }. A token request with
//                  resource=<indicator> gets an access token for that API:
//                  its aud, only the requested scopes the API has, a JWT
//                  (RFC 9068, typ at+jwt) or an opaque token (introspect it
//                  at /token/introspection). Any other indicator is
//                  invalid_target. Default {}: every resource parameter is
//                  invalid_target, as oidc-provider's default.
//   CLIENT_CREDENTIALS  "true" to enable the client_credentials grant
//                  (clients registered with that grant type); default off.
//   REVOCATION     "true" to enable the revocation endpoint (RFC 7009) at
//                  /token/revocation: a client revokes its own tokens;
//                  default off.
//   LOG_GRANTS     "false" to leave out the per-grant "grant.success" line
//                  on stderr (a synchronous write per token): for
//                  tests/bench's token_vs_node scenario, so that the node
//                  side is not charged for logging Portcullis does not do;
//                  default on.
//
// Always on: introspection at /token/introspection for any authenticated
// client, and DPoP (RFC 9449, oidc-provider's default, without nonces): a
// token request with a DPoP proof gets a DPoP-bound access token (JWT with
// cnf.jkt; introspection answers with cnf.jkt).
//
// On success it prints exactly one line "READY <issuer>" on stdout; any other
// output goes to stderr: oidc-provider's notices, request errors, and one
// line per token grant ("grant.success: grant_type=<type> client=<id>",
// unless LOG_GRANTS=false) and per delivered back-channel logout
// ("backchannel.success: client=<id> sub=<sub> sid=<sid>"), which tests may
// count. SIGTERM and SIGINT close the server and exit 0.

import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

function fatal(msg) {
  console.error(`oidc-provider test server: ${msg}`);
  process.exit(2);
}

function parseJSON(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  try {
    return JSON.parse(raw);
  } catch (err) {
    return fatal(`${name} is not valid JSON: ${err.message}`);
  }
}

const port = Number.parseInt(process.env.PORT ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  fatal(`PORT must be a port number, got ${JSON.stringify(process.env.PORT)}`);
}
const issuer = process.env.ISSUER || `http://127.0.0.1:${port}`;
const clients = parseJSON('CLIENTS_JSON', []);
if (!Array.isArray(clients)) fatal('CLIENTS_JSON must be a JSON array');
const accounts = parseJSON('ACCOUNTS_JSON', {});
if (accounts === null || typeof accounts !== 'object' || Array.isArray(accounts)) {
  fatal('ACCOUNTS_JSON must be a JSON object');
}
const conformIdTokenClaims = process.env.CONFORM_ID_TOKEN_CLAIMS === 'true';
const requirePAR = process.env.REQUIRE_PAR === 'true';
const rotateRefreshTokens = process.env.ROTATE_REFRESH_TOKENS === 'true';
const issWithIdToken = process.env.ISS_WITH_ID_TOKEN === 'true';
const clientCredentials = process.env.CLIENT_CREDENTIALS === 'true';
const revocation = process.env.REVOCATION === 'true';
const logGrants = process.env.LOG_GRANTS !== 'false';
const resourceServers = parseJSON('RESOURCE_SERVERS_JSON', {});
if (resourceServers === null || typeof resourceServers !== 'object' || Array.isArray(resourceServers)) {
  fatal('RESOURCE_SERVERS_JSON must be a JSON object');
}
// oidc-provider's resource server information, by resource indicator.
const resourceServerInfo = new Map();
for (const [indicator, rs] of Object.entries(resourceServers)) {
  const where = `RESOURCE_SERVERS_JSON["${indicator}"]`;
  if (rs === null || typeof rs !== 'object') fatal(`${where} must be an object`);
  if (typeof rs.scope !== 'string') fatal(`${where}.scope must be a string of space-separated scopes`);
  const format = rs.format ?? 'jwt';
  if (!['jwt', 'opaque'].includes(format)) fatal(`${where}.format must be "jwt" or "opaque"`);
  const alg = rs.alg ?? 'ES256';
  if (!['ES256', 'RS256'].includes(alg)) fatal(`${where}.alg must be ES256 or RS256 (the provider's keys)`);
  if (rs.accessTokenTTL !== undefined && (!Number.isInteger(rs.accessTokenTTL) || rs.accessTokenTTL <= 0)) {
    fatal(`${where}.accessTokenTTL must be a positive number of seconds`);
  }
  resourceServerInfo.set(indicator, {
    scope: rs.scope,
    audience: rs.audience ?? indicator,
    accessTokenFormat: format,
    ...(rs.accessTokenTTL ? { accessTokenTTL: rs.accessTokenTTL } : {}),
    ...(format === 'jwt' ? { jwt: { sign: { alg } } } : {}),
  });
}
const accessTokenTTL = process.env.ACCESS_TOKEN_TTL ? Number(process.env.ACCESS_TOKEN_TTL) : 3600;
if (!Number.isInteger(accessTokenTTL) || accessTokenTTL <= 0) {
  fatal(`ACCESS_TOKEN_TTL must be a positive number of seconds, got ${JSON.stringify(process.env.ACCESS_TOKEN_TTL)}`);
}

// Accounts are found by login id (the key) or by subject, and identified by
// their subject: the dev login form's "login" becomes the subject (see the
// interactionFinished wrapper below), so that ID tokens, userinfo, the
// session and back-channel logout tokens all carry the same sub.
const bySubject = new Map();
const byLogin = new Map();
for (const [login, claims] of Object.entries(accounts)) {
  if (claims === null || typeof claims !== 'object') fatal(`ACCOUNTS_JSON["${login}"] must be an object`);
  const sub = String(claims.sub ?? login);
  const account = { ...claims, sub };
  byLogin.set(login, account);
  bySubject.set(sub, account);
}
function lookup(id) {
  return bySubject.get(id) ?? byLogin.get(id);
}

// Fresh signing keys on every start: RS256 (oidc-provider's default ID token
// algorithm) and ES256.
function signingKey(type, options) {
  const jwk = generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' });
  return { ...jwk, use: 'sig', kid: `${type}-${randomBytes(6).toString('hex')}` };
}
const jwks = {
  keys: [
    signingKey('rsa', { modulusLength: 2048 }),
    signingKey('ec', { namedCurve: 'P-256' }),
  ],
};

// checkScope, early in oidc-provider's authorization endpoint (and PAR
// endpoint), removes offline_access from the scope unless prompt includes
// consent. The validators of extraParams run later in the same chain, for
// every request, so this one puts offline_access back when the request asked
// for it (in its query or body, or in the pushed request it refers to), a
// code is requested and the client may use refresh tokens: tests get a
// refresh token without prompt=consent, hence without a consent page.
const RESTORE_OFFLINE_ACCESS = 'x_portcullis_test_restore_offline_access';
function requestedScope(ctx) {
  const par = ctx.oidc.entities.PushedAuthorizationRequest;
  if (typeof par?.request === 'string') {
    try {
      return JSON.parse(Buffer.from(par.request.split('.')[1], 'base64url').toString()).scope;
    } catch {
      return undefined;
    }
  }
  return ctx.oidc.body?.scope ?? ctx.query?.scope;
}
function restoreOfflineAccess(ctx) {
  const { params, client } = ctx.oidc;
  const requested = requestedScope(ctx);
  if (typeof requested !== 'string' || !requested.split(' ').includes('offline_access')) return;
  const scopes = params.scope ? params.scope.split(' ') : [];
  if (scopes.includes('offline_access')) return;
  if (!String(params.response_type ?? '').split(' ').includes('code')) return;
  if (!client?.grantTypeAllowed('refresh_token')) return;
  params.scope = [...scopes, 'offline_access'].join(' ');
}

const configuration = {
  clients,
  jwks,
  // A fixed key: tests never need to rotate it.
  cookies: {
    keys: ['portcullis-e2e-oidc-provider-cookie-key'],
    // Prefixed names, so that they cannot collide with the cookies of
    // services on other 127.0.0.1 ports (cookies ignore ports).
    names: {
      session: 'op_session',
      interaction: 'op_interaction',
      resume: 'op_interaction_resume',
    },
  },
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  conformIdTokenClaims,
  features: {
    devInteractions: { enabled: true },
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: requirePAR },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    revocation: { enabled: revocation },
    clientCredentials: { enabled: clientCredentials },
    // Access tokens for the APIs of RESOURCE_SERVERS_JSON (RFC 8707); a
    // request without a resource parameter gets what it got before.
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: async (_ctx, indicator) => {
        const info = resourceServerInfo.get(indicator);
        if (!info) throw new errors.InvalidTarget(`unknown resource indicator ${indicator}`);
        return structuredClone(info);
      },
    },
    claimsParameter: { enabled: true },
    // Signed request objects (JAR, RFC 9101), by value or pushed; a client
    // registered with require_signed_request_object must use them.
    requestObjects: { enabled: true, requireSignedRequestObject: false },
    userinfo: { enabled: true },
  },
  responseTypes: ['code', 'code id_token'],
  // PKCE (S256 only, oidc-provider never offers "plain"): required of public
  // clients, optional for confidential ones.
  pkce: {
    required: (_ctx, client) => client.clientAuthMethod === 'none',
  },
  // oidc-provider drops offline_access from an authorization request without
  // prompt=consent (OIDC Core 11); this puts it back (see restoreOfflineAccess).
  extraParams: {
    [RESTORE_OFFLINE_ACCESS]: restoreOfflineAccess,
  },
  // The authorization_code grant issues a refresh token whenever
  // offline_access was granted and the client may use refresh_token.
  issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && code.scopes.has('offline_access'),
  ...(rotateRefreshTokens ? { rotateRefreshToken: true } : {}),
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    // Consent on the user's behalf: everything requested is granted, so
    // the consent page only shows for prompt=consent.
    let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
    grant ||= new oidc.provider.Grant({
      clientId: oidc.client.clientId,
      accountId: oidc.account.accountId,
    });
    const scopes = [...oidc.requestParamOIDCScopes];
    if (scopes.length) grant.addOIDCScope(scopes.join(' '));
    const claims = [...oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    await grant.save();
    return grant;
  },
  async findAccount(_ctx, id) {
    const account = lookup(id) ?? { sub: id };
    return {
      accountId: account.sub,
      // oidc-provider keeps only the claims the granted scopes (and the
      // claims parameter) allow.
      async claims() {
        return { ...account };
      },
    };
  },
  ttl: {
    AccessToken: accessTokenTTL,
    ClientCredentials: accessTokenTTL,
    AuthorizationCode: 120,
    IdToken: 3600,
    Interaction: 3600,
    RefreshToken: 14 * 24 * 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  // oidc-provider's outgoing requests (back-channel logout tokens; jwks_uri
  // and sector_identifier_uri of clients) carry an undici dispatcher that
  // refuses special-use addresses, loopback included (SSRF protection). The
  // tests' relying parties are all on 127.0.0.1: drop it.
  fetch: (url, { dispatcher: _ssrfGuard, ...options }) => globalThis.fetch(url, options),
  renderError(ctx, out) {
    ctx.type = 'html';
    const rows = Object.entries(out)
      .map(([k, v]) => `<pre><strong>${k}</strong>: ${String(v).replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`)}</pre>`)
      .join('\n');
    ctx.body = `<!DOCTYPE html><html><head><title>oidc-provider error</title></head><body><h1>oops! something went wrong</h1>${rows}</body></html>`;
  },
};

let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  fatal(`invalid configuration: ${err.stack || err}`);
}

// Plain http on loopback: http redirect URIs are fine even for the hybrid
// ("code id_token") response type, which oidc-provider otherwise reserves
// for https redirect URIs.
const { invalidate } = provider.Client.Schema.prototype;
provider.Client.Schema.prototype.invalidate = function invalidateUnlessLoopback(message, code) {
  if (code === 'implicit-force-https') return;
  invalidate.call(this, message, code);
};

// The dev login form accepts any login: map a known login id to the
// account's subject.
const interactionFinished = provider.interactionFinished.bind(provider);
provider.interactionFinished = (req, res, result, options) => {
  const login = result?.login?.accountId;
  if (typeof login === 'string') {
    result.login.accountId = lookup(login)?.sub ?? login;
  }
  return interactionFinished(req, res, result, options);
};

// Clients added at run time, by POST /test/clients (a JSON client metadata
// object, or an array of them): for relying parties whose redirect URIs are
// only known once the provider runs (its issuer in their configuration).
// They shadow CLIENTS_JSON clients of the same client_id.
const runtimeClients = new Map();
const findClient = provider.Client.find.bind(provider.Client);
provider.Client.find = async (id) => runtimeClients.get(id) ?? findClient(id);

async function readJSON(req, limit = 1 << 20) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

provider.use(async (ctx, next) => {
  if (ctx.path !== '/test/clients') return next();
  if (ctx.method !== 'POST') {
    ctx.status = 405;
    ctx.set('Allow', 'POST');
    return undefined;
  }
  let list;
  try {
    const body = await readJSON(ctx.req);
    list = Array.isArray(body) ? body : [body];
    const added = list.map((metadata) => {
      if (metadata === null || typeof metadata !== 'object' || typeof metadata.client_id !== 'string' || !metadata.client_id) {
        throw new Error('each client needs a client_id');
      }
      const client = new provider.Client(structuredClone(metadata));
      Object.defineProperty(client, 'noManage', { value: true });
      return client;
    });
    for (const client of added) runtimeClients.set(client.clientId, client);
  } catch (err) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_client_metadata', error_description: err.error_description || err.message };
    console.error(`POST /test/clients: ${ctx.body.error_description}`);
    return undefined;
  }
  ctx.status = 201;
  ctx.body = { client_ids: list.map((c) => c.client_id) };
  return undefined;
});

// 'authorization.success' is emitted with the response parameters just
// before they are sent, so a listener can still add iss.
if (issWithIdToken) {
  provider.on('authorization.success', (ctx, out) => {
    if (out.id_token && out.iss === undefined && !ctx.oidc.responseMode.includes('jwt')) {
      out.iss = provider.issuer;
    }
  });
}

// What goes wrong shows up in the test's log.
for (const event of [
  'server_error', 'authorization.error', 'grant.error', 'end_session.error',
  'backchannel.error', 'introspection.error', 'userinfo.error',
  'pushed_authorization_request.error', 'discovery.error', 'jwks.error',
  'revocation.error',
]) {
  provider.on(event, (ctx, err, ...rest) => {
    const e = err instanceof Error ? err : rest.find((x) => x instanceof Error) ?? err;
    const cause = e?.cause ? ` (cause: ${e.cause.message ?? e.cause})` : '';
    const description = [e?.error_description, e?.error_detail].filter(Boolean).map((x) => ` (${x})`).join('');
    console.error(`${event}: ${ctx?.method ?? ''} ${ctx?.path ?? ''}: ${e?.name ?? ''} ${e?.message ?? e}${description}${cause}`);
  });
}
if (logGrants) {
  provider.on('grant.success', (ctx) => {
    console.error(`grant.success: grant_type=${ctx.oidc.params?.grant_type} client=${ctx.oidc.client?.clientId}`);
  });
}
provider.on('backchannel.success', (_ctx, client, accountId, sid) => {
  console.error(`backchannel.success: client=${client.clientId} sub=${accountId} sid=${sid}`);
});

// Check every client now, so that bad metadata fails the start instead of a
// later request.
for (const c of clients) {
  try {
    // eslint-disable-next-line no-await-in-loop
    const client = await provider.Client.find(String(c.client_id));
    if (!client) throw new Error('not found');
  } catch (err) {
    fatal(`client ${JSON.stringify(c.client_id)}: ${err.error_description || err.message}`);
  }
}

const server = provider.listen(port, '127.0.0.1');
server.on('error', (err) => fatal(`listen on 127.0.0.1:${port}: ${err.message}`));
server.on('listening', () => {
  process.stdout.write(`READY ${issuer}\n`);
});

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`${signal}: shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
