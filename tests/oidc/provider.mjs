// A real OpenID Connect / OAuth 2.0 authorization server (panva/oidc-provider) for
// grpc-auth's integration tests, on plain http at 127.0.0.1 only. Started (and killed)
// by tests/support/oidc.rs:
//
//   node tests/oidc/provider.mjs --port PORT [--ttl SECONDS] [--pkjwt-jwks FILE]
//
// (PORT, TTL and PKJWT_JWKS in the environment work too.) Prints one line
// `READY http://127.0.0.1:PORT` on stdout once it listens; diagnostics go to stderr.
//
// Clients (all client_credentials, no redirect URIs):
//   grpc-auth-client / grpc-auth-secret   client_secret_basic
//   grpc-auth-post   / post-secret        client_secret_post
//   grpc-auth-rs     / rs-secret          client_secret_basic, the resource server:
//                                          may introspect every client's tokens
//   grpc-auth-pkjwt                        private_key_jwt (RS256), only with --pkjwt-jwks
// Every one may also use the token-exchange grant (RFC 8693, implemented below). A
// secret client using the other secret method (Basic for a _post client, or the body
// for a _basic one) gets `invalid_client`: oidc-provider alone accepts either.
//
// Resources (RFC 8707 `resource`), scopes `greeter.read greeter.admin`:
//   urn:grpc-auth:jwt     RS256 JWT access tokens (typ at+jwt), aud = the resource
//   urn:grpc-auth:opaque  opaque access tokens (introspectable, revocable)
//   none                  opaque access tokens without audience
//
// GET /test/stats answers {"token":N,"introspection":M,"revocation":K}: the POSTs
// received at each endpoint since start (whatever their outcome).

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { createLocalJWKSet, jwtVerify } from 'jose';
import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    ttl: { type: 'string' },
    'pkjwt-jwks': { type: 'string' },
  },
  strict: true,
});

const port = Number(args.port ?? process.env.PORT ?? 0);
const ttl = Number(args.ttl ?? process.env.TTL ?? 300);
const pkjwtJwksPath = args['pkjwt-jwks'] ?? process.env.PKJWT_JWKS;
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`provider.mjs: --port PORT (1-65535) is required, got ${args.port ?? process.env.PORT}`);
  process.exit(2);
}
if (!Number.isInteger(ttl) || ttl <= 0) {
  console.error(`provider.mjs: --ttl must be a positive integer (seconds), got ${args.ttl ?? process.env.TTL}`);
  process.exit(2);
}

const issuer = `http://127.0.0.1:${port}`;

const SCOPES = 'greeter.read greeter.admin';
const JWT_RESOURCE = 'urn:grpc-auth:jwt';
const OPAQUE_RESOURCE = 'urn:grpc-auth:opaque';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const RS_CLIENT = 'grpc-auth-rs';

// The signing key: a fresh RSA key each start (tokens of a previous run do not verify).
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `grpc-auth-test-${randomUUID()}`,
  alg: 'RS256',
  use: 'sig',
};
const { d, p, q, dp, dq, qi, ...publicJwk } = signingJwk;
const ownKeys = createLocalJWKSet({ keys: [publicJwk] });

const grantTypes = ['client_credentials', TOKEN_EXCHANGE];
const common = {
  grant_types: grantTypes,
  response_types: [],
  redirect_uris: [],
  scope: SCOPES,
};
const clients = [
  {
    ...common,
    client_id: 'grpc-auth-client',
    client_secret: 'grpc-auth-secret',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    ...common,
    client_id: 'grpc-auth-post',
    client_secret: 'post-secret',
    token_endpoint_auth_method: 'client_secret_post',
  },
  {
    ...common,
    client_id: RS_CLIENT,
    client_secret: 'rs-secret',
    token_endpoint_auth_method: 'client_secret_basic',
  },
];
if (pkjwtJwksPath) {
  const jwks = JSON.parse(readFileSync(pkjwtJwksPath, 'utf8'));
  clients.push({
    ...common,
    client_id: 'grpc-auth-pkjwt',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'RS256',
    jwks,
  });
}

// RFC 8707 resource servers; an unknown resource is `invalid_target`.
function resourceServerInfo(resource) {
  switch (resource) {
    case JWT_RESOURCE:
      return {
        scope: SCOPES,
        audience: JWT_RESOURCE,
        accessTokenTTL: ttl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      };
    case OPAQUE_RESOURCE:
      return {
        scope: SCOPES,
        audience: OPAQUE_RESOURCE,
        accessTokenTTL: ttl,
        accessTokenFormat: 'opaque',
      };
    default:
      throw new errors.InvalidTarget(`unknown resource ${resource}`);
  }
}

// Claims a token-exchange sets on the token it issues (not persisted on the model
// itself: they reach the token through `extraTokenClaims`).
const exchanged = new WeakMap();

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingJwk] },
  scopes: ['openid', 'offline_access', 'greeter.read', 'greeter.admin'],
  cookies: { keys: ['grpc-auth-test-cookie-key'] },
  ttl: {
    AccessToken: ttl,
    ClientCredentials: ttl,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // The resource server client introspects any client's tokens; another client
      // only its own.
      allowedPolicy(ctx, client, token) {
        return client.clientId === RS_CLIENT || client.clientId === token.clientId;
      },
    },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No `resource`: an opaque token without audience.
      defaultResource(ctx, client, oneOf) {
        return oneOf;
      },
      useGrantedResource() {
        return false;
      },
      getResourceServerInfo(ctx, resource) {
        return resourceServerInfo(resource);
      },
    },
  },
  extraTokenClaims(ctx, token) {
    return exchanged.get(token);
  },
  formats: {
    customizers: {
      // A token-exchange JWT's `sub` is the subject token's, not the caller's client_id.
      jwt(ctx, token, jwt) {
        const claims = exchanged.get(token);
        if (claims?.sub) {
          jwt.payload.sub = claims.sub;
        }
      },
    },
  },
  // Plain http at 127.0.0.1: nothing to proxy, no X-Forwarded-* to trust.
  proxy: false,
});

// oidc-provider accepts a client secret in the Authorization header and in the body
// alike, whichever of client_secret_basic / client_secret_post the client registered.
// The tests want to see the method the crate uses: the other one is `invalid_client`.
const { compareClientSecret } = provider.Client.prototype;
provider.Client.prototype.compareClientSecret = function strictSecretMethod(actual) {
  const used = Provider.ctx?.headers.authorization !== undefined
    ? 'client_secret_basic'
    : 'client_secret_post';
  if (used !== this.clientAuthMethod) {
    throw new errors.InvalidClientAuth(`${this.clientId} must authenticate with ${this.clientAuthMethod}, not ${used}`);
  }
  return compareClientSecret.call(this, actual);
};

// --- Token exchange (RFC 8693), minimal ------------------------------------------------
//
// subject_token: an access token this provider issued and that is still valid: a JWT
// (verified against the provider's own key and issuer) or an opaque token (looked up;
// revoked or expired ones are refused). subject_token_type: access_token, or jwt for a
// JWT. Optional `resource` (or `audience`, taken as the resource) and `scope` (a subset of
// the subject's scopes; default: all of them). requested_token_type: absent,
// access_token or jwt. No actor tokens. The answer: a new access token of the calling
// client with `sub` = the subject's and `act: {sub: calling client}`.
async function tokenExchange(ctx) {
  const { params, client } = ctx.oidc;

  if (params.actor_token !== undefined) {
    throw new errors.InvalidRequest('actor_token is not supported');
  }
  if (
    params.requested_token_type !== undefined
    && ![ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE].includes(params.requested_token_type)
  ) {
    throw new errors.InvalidRequest('unsupported requested_token_type');
  }
  if (!params.subject_token) throw new errors.InvalidRequest('missing required parameter \'subject_token\'');
  if (!params.subject_token_type) throw new errors.InvalidRequest('missing required parameter \'subject_token_type\'');

  const isJwt = params.subject_token.split('.').length === 3;
  if (params.subject_token_type === JWT_TOKEN_TYPE ? !isJwt : params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('unsupported subject_token_type');
  }

  let subject;
  if (isJwt) {
    try {
      const { payload } = await jwtVerify(params.subject_token, ownKeys, {
        issuer,
        typ: 'at+jwt',
        algorithms: ['RS256'],
      });
      subject = { sub: payload.sub, clientId: payload.client_id, scope: payload.scope };
    } catch (cause) {
      throw new errors.InvalidGrant('subject_token is invalid', cause.message);
    }
  } else {
    const found = await provider.ClientCredentials.find(params.subject_token)
      ?? await provider.AccessToken.find(params.subject_token);
    if (!found?.isValid) {
      throw new errors.InvalidGrant('subject_token is invalid, expired or revoked');
    }
    subject = {
      sub: found.accountId ?? found.extra?.sub ?? found.clientId,
      clientId: found.clientId,
      scope: found.scope,
    };
  }

  const available = new Set(subject.scope?.split(' ').filter(Boolean));
  let scopes = [...available];
  if (params.scope) {
    scopes = params.scope.split(' ').filter(Boolean);
    const over = scopes.find((s) => !available.has(s));
    if (over !== undefined) {
      throw new errors.InvalidScope('requested scope exceeds the subject token\'s', over);
    }
  }

  const resource = params.resource ?? params.audience;
  if (Array.isArray(resource)) {
    throw new errors.InvalidTarget('only one resource/audience is supported');
  }

  const token = new provider.ClientCredentials({ client, scope: scopes.join(' ') || undefined });
  if (resource !== undefined) {
    const info = resourceServerInfo(resource);
    if (params.requested_token_type === JWT_TOKEN_TYPE && info.accessTokenFormat !== 'jwt') {
      throw new errors.InvalidTarget('requested_token_type jwt needs a resource issuing JWTs');
    }
    token.resourceServer = new provider.ResourceServer(resource, info);
    const allowed = token.resourceServer.scopes;
    token.scope = scopes.filter((s) => allowed.has(s)).join(' ') || undefined;
  } else if (params.requested_token_type === JWT_TOKEN_TYPE) {
    throw new errors.InvalidTarget('requested_token_type jwt needs resource=' + JWT_RESOURCE);
  }
  exchanged.set(token, { sub: subject.sub, act: { sub: client.clientId } });

  ctx.oidc.entity('ClientCredentials', token);
  const value = await token.save();

  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.expiration,
    ...(token.scope ? { scope: token.scope } : {}),
  };
}

provider.registerGrantType(
  TOKEN_EXCHANGE,
  tokenExchange,
  [
    'subject_token',
    'subject_token_type',
    'actor_token',
    'actor_token_type',
    'requested_token_type',
    'audience',
    'resource',
    'scope',
  ],
  ['resource', 'audience'],
);

// --- Request counters -----------------------------------------------------------------

const stats = { token: 0, introspection: 0, revocation: 0 };
const counted = new Map([
  [new URL(provider.urlFor('token')).pathname, 'token'],
  [new URL(provider.urlFor('introspection')).pathname, 'introspection'],
  [new URL(provider.urlFor('revocation')).pathname, 'revocation'],
]);

// Runs before oidc-provider's router (Provider#use inserts ahead of it).
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/test/stats') {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { ...stats };
    return;
  }
  if (ctx.method === 'POST' && counted.has(ctx.path)) {
    stats[counted.get(ctx.path)] += 1;
  }
  await next();
});

for (const event of ['grant.error', 'introspection.error', 'revocation.error', 'server_error', 'jwks.error']) {
  provider.on(event, (ctx, err) => {
    const why = [err?.error_description, err?.error_detail, err?.cause?.message].filter(Boolean).join('; ');
    console.error(`${event}: ${err?.name}: ${err?.message}${why ? ` (${why})` : ''}`);
  });
}

// Exit when the parent (the test process) is gone, even if it could not kill us (a
// provider in a static is never dropped; a test binary may be SIGKILLed). Node caches
// process.ppid, so probe the parent's pid instead.
const parent = process.ppid;
setInterval(() => {
  try {
    process.kill(parent, 0);
  } catch (err) {
    if (err.code === 'ESRCH') process.exit(0);
  }
}, 500).unref();
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});
server.on('error', (err) => {
  console.error(`listen on 127.0.0.1:${port}: ${err.message}`);
  process.exit(1);
});
