// A real OpenID provider for the SSO tests (the `oidc-provider` package, devInteractions'
// login form). Configured by the environment:
//   IDP_PORT           the loopback port; the issuer is http://127.0.0.1:<port>
//   IDP_CLIENT_ID      the portal's confidential client (and the API audience)
//   IDP_CLIENT_SECRET  its secret
//   IDP_REDIRECT_URI   the portal's <PORTAL_URL>/oidc/callback/
//   IDP_LOGOUT_URI     where sign-out returns (<PORTAL_URL>/login/)
//   IDP_SIGNING_KEY    optional: a file holding the private RSA JWK (with kid) to sign with,
//                      so a test can mint tokens with the provider's own key
//   IDP_ID_TOKEN_TTL   optional: how many seconds an ID token lasts (`ttl.IdToken`)
//   IDP_ID_TOKEN_CLOCK_OFFSET
//                      optional: seconds added to the clock that stamps ID tokens (their
//                      `iat` and `exp`) and nothing else, as though the provider had issued
//                      them that long before (negative) the portal asked for them
// Members (any password): ada (builder), boss (group enclave-admins), eve (unverified
// e-mail), mallory (verified, never invited), all @example.com.
// Access tokens are JWTs when a resource is asked for (resource indicators):
//   urn:enclave:api  audience = the client id (the portal's API)
//   urn:other:api    audience "other-api" (a token the portal must refuse)
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

import Provider from "oidc-provider";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const port = Number(env("IDP_PORT"));
const issuer = `http://127.0.0.1:${port}`;
const clientId = env("IDP_CLIENT_ID");

const USERS = {
  "ada@example.com": { name: "Ada Lovelace", email_verified: true, groups: ["builders"] },
  "boss@example.com": { name: "The Boss", email_verified: true, groups: ["enclave-admins"] },
  "eve@example.com": { name: "Eve Unverified", email_verified: false, groups: [] },
  "mallory@example.com": { name: "Mallory Outsider", email_verified: true, groups: [] },
};
const RESOURCES = {
  "urn:enclave:api": clientId,
  "urn:other:api": "other-api",
};

function signingKey() {
  if (process.env.IDP_SIGNING_KEY) {
    return JSON.parse(readFileSync(process.env.IDP_SIGNING_KEY, "utf8"));
  }
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), kid: "idp-1", alg: "RS256", use: "sig" };
}

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: env("IDP_CLIENT_SECRET"),
      redirect_uris: [env("IDP_REDIRECT_URI")],
      post_logout_redirect_uris: [env("IDP_LOGOUT_URI")],
      grant_types: ["authorization_code"],
      response_types: ["code"],
    },
  ],
  jwks: { keys: [signingKey()] },
  cookies: { keys: ["enclave-test-idp-cookie-key"] },
  pkce: { required: () => true },
  ...(process.env.IDP_ID_TOKEN_TTL ? { ttl: { IdToken: Number(process.env.IDP_ID_TOKEN_TTL) } } : {}),
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "groups"],
  },
  async findAccount(_ctx, id) {
    const user = USERS[id];
    if (!user) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, email: id, ...user }) };
  },
  // No consent screen: the organisation's own portal is pre-authorised.
  async loadExistingGrant(ctx) {
    const { client, session } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope("openid email profile");
    for (const resource of Object.keys(RESOURCES)) grant.addResourceScope(resource, "api");
    await grant.save();
    return grant;
  },
  // The portal maps an API access token to its member by this claim.
  async extraTokenClaims(_ctx, token) {
    if (token.kind !== "AccessToken" || !token.accountId) return undefined;
    return { email: token.accountId };
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      useGrantedResource: async () => true,
      async getResourceServerInfo(_ctx, resource) {
        if (!(resource in RESOURCES)) throw new Provider.errors.InvalidTarget();
        return {
          scope: "api",
          audience: RESOURCES[resource],
          accessTokenFormat: "jwt",
          accessTokenTTL: 600,
          jwt: { sign: { alg: "RS256" } },
        };
      },
    },
  },
};

const provider = new Provider(issuer, configuration);

// In the authorisation-code flow the ID token is minted when the portal exchanges the code,
// and the portal checks it at once: a short `ttl.IdToken` alone never reaches the portal
// expired, however long the browser's callback is held. oidc-provider has no setting for the
// time it stamps, so `issue` is wrapped: for ID tokens only, `iat` and the expiry come from
// the offset clock (an `expiresAt` in the past makes oidc-provider's own signer write an
// `exp` in the past; an offset of exactly -ttl would read as "no expiry given"). Codes,
// sessions, access tokens and the signature are untouched.
const idTokenClockOffset = Number(process.env.IDP_ID_TOKEN_CLOCK_OFFSET || 0);
if (idTokenClockOffset) {
  const { IdToken } = provider;
  const { issue } = IdToken.prototype;
  IdToken.prototype.issue = function issueOnTheOffsetClock(options = {}) {
    if (options.use !== "idtoken") return issue.call(this, options);
    const iat = Math.floor(Date.now() / 1000) + idTokenClockOffset;
    const expiresAt = iat + IdToken.expiresIn(this.ctx, this, this.client);
    this.set("iat", iat);
    return issue.call(this, { ...options, expiresAt });
  };
}
// Why a token request was refused (`authorization code already consumed` …), for the log.
provider.on("grant.error", (_ctx, error) => console.log(`grant.error ${error.error}: ${error.error_detail}`));
const server = createServer(provider.callback());
server.listen(port, "127.0.0.1", () => console.log(`oidc-provider listening on ${issuer}`));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
