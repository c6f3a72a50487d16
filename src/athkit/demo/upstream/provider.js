// Local upstream OpenID provider for `athkit demo --gateway` and the gateway tests. Never
// expose it: any login name signs in with any password.
//
// Runs oidc-provider (pinned in package.json) on 127.0.0.1:$PORT with issuer
// http://127.0.0.1:$PORT and one confidential client. Configured from env vars:
//
//   PORT                  listen port (required)
//   CLIENT_ID             client_id (required)
//   CLIENT_SECRET         client_secret (required)
//   REDIRECT_URIS         comma-separated redirect_uris (required)
//   RESOURCE              the protected API's audience URL, e.g. http://127.0.0.1:9100 (required)
//   API_SCOPES            space-separated API scopes (default "api:read api:write")
//   ACCESS_TOKEN_TTL      access token lifetime in seconds (default 60)
//   ROTATE_REFRESH_TOKENS "1" -> every refresh_token grant rotates the refresh token
//                         (the old one becomes single-use/consumed); otherwise the same
//                         refresh token stays valid and is not returned again (default)
//
// Prints exactly `READY <issuer>` on stdout once listening; exits 0 on SIGTERM/SIGINT.
//
// Behaviour worth knowing when writing tests against it:
// * PKCE (S256 only) is required for every authorization request, whatever the client.
// * Refresh tokens: oidc-provider drops `offline_access` from the requested scope unless
//   the request also carries prompt=consent (OIDC Core 11). So that a client asking for
//   offline_access always gets a refresh token, `issueRefreshToken` returns true for every
//   authorization_code exchange by this client (it is registered with the refresh_token
//   grant), with or without offline_access / prompt=consent.
// * Resource indicators: with no `resource` parameter the authorization request defaults
//   to RESOURCE, and code / refresh exchanges reuse the granted resource
//   (useGrantedResource), so every access token is a JWT (typ at+jwt) for RESOURCE:
//   aud=RESOURCE, scope = the requested API scopes only (openid/offline_access/email
//   are not in it). A `resource` other than RESOURCE is rejected with invalid_target.
//   Such access tokens are not accepted at the userinfo endpoint (it wants tokens
//   without an audience); the id_token carries sub + email instead.
// * Login/consent: oidc-provider's built-in devInteractions. GET /interaction/:uid shows
//   a login form (POST prompt=login, login=<any name>, password=<anything>) then a
//   consent form (POST prompt=consent). GET /interaction/:uid/abort denies: the client
//   gets error=access_denied at its redirect_uri. The account id (sub) is the login name.

import * as crypto from 'node:crypto';
import process from 'node:process';
import { promisify } from 'node:util';

// Ephemeral RS256 signing key, new on every start. Generated on the libuv thread pool while
// oidc-provider loads (both take ~0.5 s), hence the dynamic import.
const keyPair = promisify(crypto.generateKeyPair)('rsa', { modulusLength: 2048 });
const { default: Provider, errors } = await import('oidc-provider');

function env(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    if (fallback === undefined) {
      process.stderr.write(`provider.js: missing required env var ${name}\n`);
      process.exit(2);
    }
    return fallback;
  }
  return value;
}

const PORT = Number.parseInt(env('PORT'), 10);
const ISSUER = `http://127.0.0.1:${PORT}`;
const CLIENT_ID = env('CLIENT_ID');
const CLIENT_SECRET = env('CLIENT_SECRET');
const REDIRECT_URIS = env('REDIRECT_URIS').split(',').map((s) => s.trim()).filter(Boolean);
const RESOURCE = env('RESOURCE');
const API_SCOPES = env('API_SCOPES', 'api:read api:write').split(/\s+/).filter(Boolean).join(' ');
const ACCESS_TOKEN_TTL = Number.parseInt(env('ACCESS_TOKEN_TTL', '60'), 10);
const ROTATE_REFRESH_TOKENS = env('ROTATE_REFRESH_TOKENS', '0') === '1';

const signingKey = {
  ...(await keyPair).privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(8).toString('hex'),
  use: 'sig',
  alg: 'RS256',
};

const configuration = {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      // oidc-provider treats client_secret_basic and client_secret_post as interchangeable
      // for a client registered with either, so both work for this client.
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: REDIRECT_URIS,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  // OIDC scopes only; the API scopes belong to the resource server (getResourceServerInfo).
  scopes: ['openid', 'offline_access', 'email'],
  responseTypes: ['code'],
  // email is released with plain `openid` too (not only with the `email` scope), so the
  // id_token of a client asking just for "openid ..." carries sub + email.
  claims: {
    openid: ['sub', 'email', 'email_verified'],
    email: ['email', 'email_verified'],
  },
  // Account id == login name; any name is accepted.
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true };
      },
    };
  },
  pkce: {
    required: () => true,
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: ROTATE_REFRESH_TOKENS,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 24 * 3600,
    Interaction: 600,
    Session: 24 * 3600,
    Grant: 24 * 3600,
  },
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => {
        if (oneOf) return oneOf.includes(RESOURCE) ? RESOURCE : oneOf;
        return RESOURCE;
      },
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: API_SCOPES,
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: ACCESS_TOKEN_TTL,
        };
      },
    },
  },
  // Show the real error instead of the generic HTML page for server-side failures.
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
};

const provider = new Provider(ISSUER, configuration);

const server = provider.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`READY ${ISSUER}\n`);
});

server.on('error', (err) => {
  process.stderr.write(`provider.js: ${err.stack || err}\n`);
  process.exit(1);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
