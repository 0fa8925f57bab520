#!/usr/bin/env node
// Drives a running credod with a real OAuth 2.0 client library (oauth4webapi) and checks every
// access token with a real JOSE implementation (jose) against the published JWKS.
//
// usage: node oauth_flow.mjs [SERVER_URL] [ADMIN_TOKEN]
//        (or CREDO_URL / CREDO_ADMIN_TOKEN in the environment)
// Exits 0 when every step passed, 1 on the first failure (with the step named), 2 on bad usage.

import * as oauth from 'oauth4webapi';
import * as jose from 'jose';
import { randomBytes } from 'node:crypto';

const baseUrl = process.argv[2] ?? process.env.CREDO_URL;
const adminToken = process.argv[3] ?? process.env.CREDO_ADMIN_TOKEN;
if (!baseUrl || !adminToken) {
  console.error('usage: node oauth_flow.mjs SERVER_URL ADMIN_TOKEN (or CREDO_URL, CREDO_ADMIN_TOKEN)');
  process.exit(2);
}

// The test server speaks plain http on loopback; oauth4webapi refuses that unless told.
const insecure = { [oauth.allowInsecureRequests]: true };
const rand = (n = 6) => randomBytes(n).toString('hex');

let passed = 0;
let current = 'setup';

async function step(name, fn) {
  current = name;
  const result = await fn();
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
  return result;
}

function check(condition, message, detail) {
  if (!condition) {
    throw new Error(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
  }
}

async function api(method, path, body, bearer) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const res = await fetch(new URL(path, baseUrl), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { status: res.status, json, text };
}

async function expectOAuthError(promise, code, what) {
  try {
    await promise;
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError) {
      check(err.error === code, `${what}: expected error ${code}, got ${err.error}`, err.cause);
      return err;
    }
    throw new Error(`${what}: expected OAuth error ${code}, got ${err?.name}: ${err?.message}`);
  }
  throw new Error(`${what}: expected OAuth error ${code}, but the request succeeded`);
}

async function main() {
  const issuer = new URL(baseUrl);

  // ---- fixtures through Credo's own API ------------------------------------------------------
  const confidential = {
    client_id: `conf-${rand()}`, client_secret: `secret-${rand(16)}`,
    redirect_uris: ['http://127.0.0.1:9/conformance/cb'], scopes: ['api.read', 'api.write'],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  };
  const publicClient = {
    client_id: `pub-${rand()}`, redirect_uris: ['http://127.0.0.1:9/conformance/pub-cb'],
    scopes: ['api.read'], grant_types: ['authorization_code', 'refresh_token'],
  };
  const user = { email: `conformance.${rand()}@example.com`, password: `pw-${rand(12)}` };
  let bearer;

  await step('register clients via /admin/clients', async () => {
    for (const c of [confidential, publicClient]) {
      const r = await api('POST', '/admin/clients', c, adminToken);
      check(r.status === 201, `registering ${c.client_id} gave HTTP ${r.status}`, r.json ?? r.text);
    }
  });

  await step('register and log in a user, grant consent', async () => {
    let r = await api('POST', '/users', { ...user, name: 'Conformance' });
    check(r.status === 201, `POST /users gave HTTP ${r.status}`, r.json ?? r.text);
    user.id = r.json.id;
    r = await api('POST', '/auth/login', user);
    check(r.status === 200, `POST /auth/login gave HTTP ${r.status}`, r.json ?? r.text);
    bearer = r.json.access_token;
    for (const [clientId, scopes] of [[confidential.client_id, ['api.read', 'api.write']],
                                      [publicClient.client_id, ['api.read']]]) {
      r = await api('POST', '/auth/consent', { client_id: clientId, scopes }, bearer);
      check(r.status === 200, `consent for ${clientId} gave HTTP ${r.status}`, r.json ?? r.text);
    }
  });

  // ---- discovery ---------------------------------------------------------------------------
  const as = await step('discovery (processDiscoveryResponse)', async () => {
    const res = await oauth.discoveryRequest(issuer, insecure);
    const meta = await oauth.processDiscoveryResponse(issuer, res);
    for (const field of ['authorization_endpoint', 'token_endpoint', 'introspection_endpoint',
                         'revocation_endpoint', 'jwks_uri']) {
      check(typeof meta[field] === 'string', `discovery lacks ${field}`, meta);
    }
    check(meta.code_challenge_methods_supported?.includes('S256'), 'discovery lacks S256', meta);
    return meta;
  });

  const jwks = jose.createRemoteJWKSet(new URL(as.jwks_uri), { cooldownDuration: 0 });
  async function verifyAccessToken(token, expected, keySet = jwks) {
    const { payload, protectedHeader } = await jose.jwtVerify(token, keySet, {
      issuer: as.issuer, algorithms: ['ES256'], typ: 'at+jwt',
    });
    for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'scope']) {
      check(payload[claim] !== undefined, `access token lacks claim ${claim}`, payload);
    }
    for (const [claim, value] of Object.entries(expected)) {
      check(payload[claim] === value, `access token claim ${claim} is ${payload[claim]}, expected ${value}`);
    }
    return { payload, protectedHeader };
  }

  const confClient = { client_id: confidential.client_id };
  const confAuth = oauth.ClientSecretBasic(confidential.client_secret);
  const pubClient = { client_id: publicClient.client_id, token_endpoint_auth_method: 'none' };
  const pubAuth = oauth.None();

  async function codeFlow(client, clientAuth, redirectUri, scope) {
    const verifier = oauth.generateRandomCodeVerifier();
    const challenge = await oauth.calculatePKCECodeChallenge(verifier);
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint);
    for (const [k, v] of Object.entries({
      response_type: 'code', client_id: client.client_id, redirect_uri: redirectUri, scope, state,
      code_challenge: challenge, code_challenge_method: 'S256',
    })) url.searchParams.set(k, v);
    const res = await fetch(url, { redirect: 'manual', headers: { authorization: `Bearer ${bearer}` } });
    check(res.status === 302, `authorize gave HTTP ${res.status}`, await res.text());
    const location = new URL(res.headers.get('location'));
    check(`${location.origin}${location.pathname}` === redirectUri,
      `authorize redirected to ${location} instead of ${redirectUri}`);
    const params = oauth.validateAuthResponse(as, client, location, state);
    const tokenRes = await oauth.authorizationCodeGrantRequest(
      as, client, clientAuth, params, redirectUri, verifier, insecure);
    check(tokenRes.headers.get('cache-control')?.includes('no-store'),
      'token response lacks Cache-Control: no-store');
    return oauth.processAuthorizationCodeResponse(as, client, tokenRes);
  }

  // ---- authorization code + PKCE --------------------------------------------------------------
  const first = await step('authorization code + PKCE, confidential client (client_secret_basic)', async () => {
    const tokens = await codeFlow(confClient, confAuth, confidential.redirect_uris[0], 'api.read api.write');
    check(typeof tokens.refresh_token === 'string', 'no refresh_token from the code grant', tokens);
    await verifyAccessToken(tokens.access_token, { sub: user.id, client_id: confidential.client_id });
    return tokens;
  });

  await step('authorization code + PKCE, public client (none) and its refresh', async () => {
    const tokens = await codeFlow(pubClient, pubAuth, publicClient.redirect_uris[0], 'api.read');
    await verifyAccessToken(tokens.access_token, { sub: user.id, client_id: publicClient.client_id });
    const res = await oauth.refreshTokenGrantRequest(as, pubClient, pubAuth, tokens.refresh_token, insecure);
    const refreshed = await oauth.processRefreshTokenResponse(as, pubClient, res);
    await verifyAccessToken(refreshed.access_token, { client_id: publicClient.client_id });
  });

  // ---- refresh, replay detection ------------------------------------------------------------
  const rotated = await step('refresh (refreshTokenGrantRequest) rotates the refresh token', async () => {
    const res = await oauth.refreshTokenGrantRequest(as, confClient, confAuth, first.refresh_token, insecure);
    const tokens = await oauth.processRefreshTokenResponse(as, confClient, res);
    check(tokens.refresh_token && tokens.refresh_token !== first.refresh_token, 'refresh token not rotated');
    await verifyAccessToken(tokens.access_token, { sub: user.id, client_id: confidential.client_id });
    return tokens;
  });

  await step('replay of the rotated refresh token is invalid_grant and revokes the family', async () => {
    await expectOAuthError(
      oauth.refreshTokenGrantRequest(as, confClient, confAuth, first.refresh_token, insecure)
        .then((res) => oauth.processRefreshTokenResponse(as, confClient, res)),
      'invalid_grant', 'replayed refresh token');
    await expectOAuthError(
      oauth.refreshTokenGrantRequest(as, confClient, confAuth, rotated.refresh_token, insecure)
        .then((res) => oauth.processRefreshTokenResponse(as, confClient, res)),
      'invalid_grant', 'successor refresh token after reuse detection');
    const res = await oauth.introspectionRequest(as, confClient, confAuth, rotated.access_token, insecure);
    const info = await oauth.processIntrospectionResponse(as, confClient, res);
    check(info.active === false, 'access token of the revoked family is still active', info);
  });

  // ---- introspection and revocation -----------------------------------------------------------
  const live = await step('introspection (introspectionRequest) of a live token', async () => {
    const tokens = await codeFlow(confClient, confAuth, confidential.redirect_uris[0], 'api.read');
    const res = await oauth.introspectionRequest(as, confClient, confAuth, tokens.access_token, insecure);
    const info = await oauth.processIntrospectionResponse(as, confClient, res);
    const { payload } = await verifyAccessToken(tokens.access_token, { client_id: confidential.client_id });
    check(info.active === true, 'live token introspects inactive', info);
    check(info.sub === user.id && info.client_id === confidential.client_id, 'introspection sub/client_id', info);
    check(info.jti === payload.jti && info.exp === payload.exp, 'introspection jti/exp differ from the JWT', info);
    check(info.token_type === 'access_token', 'introspection token_type', info);
    return tokens;
  });

  await step('revocation (revocationRequest) makes the token inactive', async () => {
    const res = await oauth.revocationRequest(as, confClient, confAuth, live.access_token, insecure);
    await oauth.processRevocationResponse(res);
    const ires = await oauth.introspectionRequest(as, confClient, confAuth, live.access_token, insecure);
    const info = await oauth.processIntrospectionResponse(as, confClient, ires);
    check(info.active === false, 'revoked token still active', info);
  });

  // ---- client credentials and key rotation -----------------------------------------------------
  async function clientCredentials() {
    const res = await oauth.clientCredentialsGrantRequest(as, confClient, confAuth, { scope: 'api.read' }, insecure);
    const tokens = await oauth.processClientCredentialsResponse(as, confClient, res);
    check(tokens.refresh_token === undefined, 'client_credentials issued a refresh token', tokens);
    return tokens;
  }

  const before = await step('client_credentials (clientCredentialsGrantRequest)', async () => {
    const tokens = await clientCredentials();
    const verified = await verifyAccessToken(tokens.access_token,
      { sub: confidential.client_id, client_id: confidential.client_id, scope: 'api.read' });
    return { tokens, verified };
  });

  await step('tokens from before and after a key rotation both verify', async () => {
    const r = await api('POST', '/admin/keys/rotate', undefined, adminToken);
    check(r.status === 200 && typeof r.json?.kid === 'string', `key rotation gave HTTP ${r.status}`, r.json ?? r.text);
    const after = await clientCredentials();
    const fresh = jose.createRemoteJWKSet(new URL(as.jwks_uri));
    const a = await verifyAccessToken(before.tokens.access_token, {}, fresh);
    const b = await verifyAccessToken(after.access_token, {}, fresh);
    check(b.protectedHeader.kid === r.json.kid, 'token after rotation is not signed with the new kid', b.protectedHeader);
    check(a.protectedHeader.kid !== b.protectedHeader.kid, 'rotation did not change the kid');
    await verifyAccessToken(after.access_token, {}, jwks); // a client that cached the old JWKS refetches
  });

  console.log(`conformance: ${passed} passed, 0 failed`);
}

main().then(() => process.exit(0), (err) => {
  console.error(`not ok - ${current}`);
  console.error(`conformance FAILED at step "${current}": ${err?.message ?? err}`);
  if (err?.cause !== undefined) {
    try { console.error(`cause: ${JSON.stringify(err.cause)}`); } catch { /* not serialisable */ }
  }
  if (err?.stack) console.error(err.stack);
  console.error(`conformance: ${passed} passed, 1 failed`);
  process.exit(1);
});
