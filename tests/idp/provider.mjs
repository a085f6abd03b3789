// A real OpenID provider for the SSO tests (the `oidc-provider` package, devInteractions'
// login form). Configured by the environment:
//   IDP_PORT           the loopback port; the issuer is http://127.0.0.1:<port>
//   IDP_CLIENT_ID      the portal's confidential client (and the API audience)
//   IDP_CLIENT_SECRET  its secret
//   IDP_REDIRECT_URI   the portal's <PORTAL_URL>/oidc/callback/
//   IDP_LOGOUT_URI     where sign-out returns (<PORTAL_URL>/login/)
//   IDP_SIGNING_KEY    optional: a file holding the private RSA JWK (with kid) to sign with,
//                      so a test can mint tokens with the provider's own key
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
const server = createServer(provider.callback());
server.listen(port, "127.0.0.1", () => console.log(`oidc-provider listening on ${issuer}`));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
