// A real OpenID provider on loopback for the `external` auth tests: node-oidc-provider with automatic
// login and consent, so a test client only follows redirects.
//   node oidc_server.mjs     env: PORT (required), TOKEN_FORMAT (jwt | opaque), ACCESS_TOKEN_TTL (seconds),
//                            SHORT_ACCESS_TOKEN_TTL (seconds, default 2)
// Clients: "hub-rs"/"hub-rs-secret" (the hub as a resource server: may introspect),
// "tester"/"tester-secret" (confidential; redirect http://127.0.0.1:8976/callback, never listened on) and
// "tester-short"/"tester-short-secret" (the same, but its access tokens live SHORT_ACCESS_TOKEN_TTL: a test
// of expiry gets a token that expires soon, while the other tokens it uses stay valid however slow the run).
// "hub-front"/"hub-front-secret" (a hub whose connectors exchange its callers' tokens: token exchange,
// RFC 8693, and client credentials). Token exchange is not built into node-oidc-provider: it is registered
// here as a grant type of its token endpoint (client authentication, parameters and errors are the
// provider's own); it takes this provider's own JWT access tokens as subject tokens and issues a JWT for the
// `resource` asked for, with the subject's `sub` and an `act` claim naming the client. GET /exchanges lists
// what was exchanged (no tokens); GET /token-requests counts the requests its token endpoints had.
// `login_hint` picks the user (default "alice"). Access tokens carry aud = the requested `resource`.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT);
const ISSUER = `http://127.0.0.1:${PORT}`;
const FORMAT = process.env.TOKEN_FORMAT || 'jwt';
const TTL = Number(process.env.ACCESS_TOKEN_TTL || 600);
const SHORT_TTL = Number(process.env.SHORT_ACCESS_TOKEN_TTL || 2);
const ttlFor = (client) => (client && client.clientId === 'tester-short' ? SHORT_TTL : TTL);
const SCOPES = ['openid', 'offline_access', 'mcp', 'hub:admin'];
const RESOURCE_SCOPES = SCOPES.filter((s) => s !== 'openid' && s !== 'offline_access').join(' ');

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = privateKey.export({ format: 'jwk' });
jwk.kid = crypto.createHash('sha256').update(jwk.n).digest('base64url').slice(0, 16);
jwk.use = 'sig';
jwk.alg = 'RS256';

const provider = new Provider(ISSUER, {
  jwks: { keys: [jwk] },
  cookies: { keys: ['tests-only'] },
  scopes: SCOPES,
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  clients: [
    { client_id: 'hub-front', client_secret: 'hub-front-secret', redirect_uris: [], response_types: [],
      grant_types: [TOKEN_EXCHANGE, 'client_credentials'], scope: SCOPES.join(' ') },
    { client_id: 'hub-rs', client_secret: 'hub-rs-secret', redirect_uris: [], response_types: [], grant_types: [] },
    ...['tester', 'tester-short'].map((id) => ({
      client_id: id, client_secret: `${id}-secret`, redirect_uris: ['http://127.0.0.1:8976/callback'],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'], scope: SCOPES.join(' '),
    })),
  ],
  responseTypes: ['code'],
  pkce: { required: () => true },
  ttl: {
    AccessToken: (_ctx, _token, client) => ttlFor(client), ClientCredentials: (_ctx, _token, client) => ttlFor(client),
    AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource, client) => ({
        scope: RESOURCE_SCOPES, audience: resource, accessTokenTTL: ttlFor(client), accessTokenFormat: FORMAT,
        ...(FORMAT === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
      }),
    },
  },
});

// token exchange -----------------------------------------------------------------------------------------
const b64json = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
function signJwt(claims) {
  const signed = `${b64json({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid })}.${b64json(claims)}`;
  return `${signed}.${crypto.sign('RSA-SHA256', Buffer.from(signed), privateKey).toString('base64url')}`;
}
function verifiedClaims(token) {
  const parts = String(token || '').split('.');
  if (parts.length !== 3) return null;
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  if (!crypto.verify('RSA-SHA256', signed, publicKey, Buffer.from(parts[2], 'base64url'))) return null;
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  return claims.iss === ISSUER && claims.exp > Date.now() / 1000 ? claims : null;
}
const exchanges = [];
provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const params = ctx.oidc.params;
  const refuse = (error, description) => { ctx.status = 400; ctx.body = { error, error_description: description }; };
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    return refuse('invalid_request', 'subject_token_type must be urn:ietf:params:oauth:token-type:access_token');
  }
  const subject = verifiedClaims(params.subject_token);
  if (!subject) return refuse('invalid_grant', 'the subject token is not a live access token of this provider');
  if (!params.resource) return refuse('invalid_target', 'resource is required');
  const allowed = RESOURCE_SCOPES.split(' ');
  const scope = (params.scope || subject.scope || '').split(' ').filter((s) => allowed.includes(s)).join(' ');
  const now = Math.floor(Date.now() / 1000);
  const client = ctx.oidc.client.clientId;
  const claims = { iss: ISSUER, sub: subject.sub, aud: params.resource, client_id: client, scope, iat: now,
                   exp: now + TTL, jti: crypto.randomUUID(), act: { sub: client } };
  exchanges.push({ client, sub: subject.sub, subject_aud: subject.aud, resource: params.resource,
                   audience: params.audience || null });
  ctx.body = { access_token: signJwt(claims), issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer',
               expires_in: TTL, scope };
}, ['subject_token', 'subject_token_type', 'requested_token_type', 'resource', 'audience', 'scope', 'actor_token',
  'actor_token_type']);

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    return provider.interactionFinished(req, res, { login: { accountId: params.login_hint || 'alice' } },
      { mergeWithLastSubmission: false });
  }
  const grant = details.grantId ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
    { mergeWithLastSubmission: true });
}

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

let tokenRequests = 0;
const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  try {
    if (req.url.startsWith('/.well-known/oauth-authorization-server')) req.url = '/.well-known/openid-configuration';
    if (req.method === 'GET' && /^\/interaction\/[^/?]+/.test(req.url)) return await interaction(req, res);
    if (req.method === 'POST' && req.url.startsWith('/token')) tokenRequests += 1;
    if (req.method === 'GET' && req.url === '/token-requests') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(tokenRequests));
    }
    if (req.method === 'GET' && req.url === '/exchanges') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(exchanges));
    }
    return callback(req, res);
  } catch (err) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(err));
  }
});
server.listen(PORT, '127.0.0.1', () => console.log(`READY ${ISSUER}`));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
