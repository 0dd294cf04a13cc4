// The OpenID Connect provider the hcflask tests start: npm `oidc-provider` (a
// certified implementation) with the clients, users and signing keys of one
// JSON file (argv[2]), written by tests/access/oidc_server.py.
//
// Its own login page checks passwords (the package's development pages accept
// any); consent is given at once (the tests' clients are first-party). Access
// tokens are JWTs (RS256) for the resource the client asks for (default
// cfg.resource), carrying the user's groups; client "short-lived" gets 1-second
// tokens, for the expiry test.
import fs from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const users = cfg.users;

const provider = new Provider(cfg.issuer, {
  clients: cfg.clients,
  jwks: cfg.jwks,
  cookies: { keys: [cfg.cookie_key] },
  pkce: { required: () => true },
  conformIdTokenClaims: false,
  claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => cfg.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => ({
        scope: 'api',
        audience: indicator,
        accessTokenFormat: 'jwt',
        accessTokenTTL: ctx.oidc.client.clientId === 'short-lived' ? 1 : 600,
      }),
    },
  },
  findAccount: (ctx, id) => (users[id] ? {
    accountId: id,
    claims: () => ({ sub: id, preferred_username: id, groups: users[id].groups }),
  } : undefined),
  extraTokenClaims: (ctx, token) => (token.accountId && users[token.accountId]
    ? { preferred_username: token.accountId, groups: users[token.accountId].groups } : undefined),
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, uid, error) {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><title>Test IdP sign-in</title></head><body>
<h1>Test IdP: sign in</h1>${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>User <input id="idp-user" name="login" autofocus></label>
<label>Password <input id="idp-password" name="password" type="password"></label>
<button id="idp-submit" type="submit">Sign in</button></form></body></html>`);
}

async function body(req) {
  let data = '';
  for await (const chunk of req) data += chunk;
  return new URLSearchParams(data);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params, session, grantId } = details;
  if (prompt.name === 'login') {
    if (req.method !== 'POST') return loginPage(res, uid);
    const form = await body(req);
    const login = form.get('login') || '';
    if (!users[login] || users[login].password !== form.get('password')) {
      return loginPage(res, uid, 'Wrong user name or password.');
    }
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  const grant = grantId ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const saved = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId: saved } }, { mergeWithLastSubmission: true });
}

const handler = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(`interaction failed: ${err.message}`);
    });
  } else {
    handler(req, res);
  }
});
server.listen(cfg.port, '127.0.0.1', () => console.log(`listening ${cfg.issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
