// Unit tests of the client against a stand-in gateway (fake-gateway.mjs).
// Tabs are clients sharing one lock and one generation record, talking over
// node's real BroadcastChannel; the clock is injected, never slept through.
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

import { AuthError, createAuthClient, localLocks, memoryStore } from "../dist/index.js";
import { startFakeGateway } from "./fake-gateway.mjs";

let clock;
let gw;
let clients;
let channelName;
const now = () => clock;

beforeEach(async () => {
  clock = 1_700_000_000_000;
  gw = await startFakeGateway({ now });
  clients = [];
  channelName = `test-${Math.random()}`;
});

afterEach(async () => {
  for (const c of clients) c.close();
  await gw.close();
});

/** One client ("tab"); tabs made with shared share the lock, record and channel name. */
function tab(options = {}, shared = null) {
  const c = createAuthClient({ baseUrl: gw.url, mode: "body", now, channel: null, ...shared, ...options });
  clients.push(c);
  return c;
}

function tabs(n, { locks = localLocks(), store = memoryStore(), ...options } = {}) {
  const list = [];
  for (let i = 0; i < n; i++) {
    const ch = new BroadcastChannel(channelName);
    const channel = {
      post: (m) => ch.postMessage(m),
      onMessage: (h) => { ch.onmessage = (ev) => h(ev.data); },
      close: () => ch.close(),
    };
    list.push(tab({ ...options, locks, store, channel, peerWait: 5000 }));
  }
  return list;
}

/** Lets BroadcastChannel messages arrive. */
async function settle(predicate) {
  for (let i = 0; i < 500 && !predicate(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(predicate(), "condition not reached");
}

const ada = { email: "ada@example.com" };
const validate = (c) => c.fetch(`${gw.url}/v1/auth/validate`, {
  method: "POST", headers: { "content-type": "application/json" }, body: "{}" });

test("signIn sends the identifier and password and keeps the session", async () => {
  const c = tab();
  const events = [];
  c.onAuthStateChange((e, s) => events.push([e, s?.userId]));

  const session = await c.signIn(ada, "right");

  assert.equal(session.userId, "u-ada");
  assert.equal(session.expiresAt, clock + 900_000);
  assert.deepEqual(gw.state.calls[0].body, { email: "ada@example.com", password: "right" });
  assert.equal(gw.state.calls[0].contentType, "application/json");
  assert.deepEqual(events, [["INITIAL_SESSION", undefined], ["SIGNED_IN", "u-ada"]]);
  assert.equal(await c.getAccessToken(), "at-1");
});

test("signIn sends back the device token an earlier sign-in of the identifier returned", async () => {
  const c = tab();

  await c.signIn(ada, "right");
  await c.signOut();
  await c.signIn({ email: "ADA@example.com" }, "right");

  const bodies = gw.state.calls.filter((x) => x.path === "/v1/auth/signin").map((x) => x.body);
  assert.deepEqual(bodies, [
    { email: "ada@example.com", password: "right" },
    { email: "ADA@example.com", password: "right", device_token: "dt-1" },
  ]);
});

test("errors expose the ErrorInfo reason, status, Retry-After and fields", async () => {
  const c = tab();

  const wrong = await c.signIn(ada, "wrong").catch((e) => e);
  gw.state.retryAfter = 7;
  const limited = await c.signIn(ada, "right").catch((e) => e);

  assert.ok(wrong instanceof AuthError);
  assert.equal(wrong.reason, "INVALID_CREDENTIALS");
  assert.equal(wrong.status, 401);
  assert.equal(wrong.code, 16);
  assert.equal(limited.reason, "RATE_LIMITED");
  assert.equal(limited.retryAfter, 7);
  assert.equal(c.session(), null);
});

test("getAccessToken refreshes 60 s before expiry, not sooner", async () => {
  const c = tab();
  await c.signIn(ada, "right");

  clock += 900_000 - 61_000;
  const early = await c.getAccessToken();
  clock += 2_000;
  const due = await c.getAccessToken();

  assert.equal(early, "at-1");
  assert.equal(due, "at-2");
  assert.deepEqual(gw.paths(), ["/v1/auth/signin", "/v1/auth/userinfo", "/v1/auth/refresh"]);
  assert.deepEqual(gw.state.calls[2].body, { refresh_token: "rt-1" });
});

test("a short-lived token is refreshed a quarter of its lifetime before expiry", async () => {
  gw.state.expiresIn = 8; // seconds: a quarter is 2 s, less than the 60 s margin
  const c = tab({ refreshMargin: 60 });
  await c.signIn(ada, "right");

  clock += 6_000 - 1;
  await c.getAccessToken();
  const before = gw.state.refreshes;
  clock += 1;
  await c.getAccessToken();

  assert.equal(before, 0);
  assert.equal(gw.state.refreshes, 1);
});

test("concurrent callers in one tab share one refresh", async () => {
  const c = tab();
  await c.signIn(ada, "right");
  clock += 900_000;

  const tokens = await Promise.all(Array.from({ length: 10 }, () => c.getAccessToken()));

  assert.deepEqual(new Set(tokens), new Set(["at-2"]));
  assert.equal(gw.state.refreshes, 1);
  assert.equal(gw.state.reused, 0);
});

test("fetch adds the bearer token and retries once after a refresh on 401 TOKEN_EXPIRED", async () => {
  const c = tab();
  await c.signIn(ada, "right");
  gw.state.expireNow = true; // the server thinks it expired; the client's clock does not

  const resp = await validate(c);

  assert.equal(resp.status, 200);
  const seen = gw.state.calls.filter((x) => x.path === "/v1/auth/validate").map((x) => x.authorization);
  assert.deepEqual(seen, ["Bearer at-1", "Bearer at-2"]);
  assert.equal(gw.state.refreshes, 1);
});

test("fetch does not retry other 401s and throws NOT_SIGNED_IN without a session", async () => {
  const c = tab();
  const missing = await validate(c).catch((e) => e);
  await c.signIn(ada, "right");
  gw.state.access.get("at-1").revoked = true;

  const resp = await validate(c);

  assert.equal(missing.reason, "NOT_SIGNED_IN");
  assert.equal(resp.status, 401);
  assert.equal(gw.state.refreshes, 0);
});

test("three tabs due at once make one refresh, twenty times in a row", async () => {
  const [a, b, c] = tabs(3);
  const signedOut = [];
  for (const t of [a, b, c]) t.onAuthStateChange((e) => { if (e === "SIGNED_OUT") signedOut.push(e); });
  await a.signIn(ada, "right");
  await settle(() => b.session() && c.session());

  for (let round = 1; round <= 20; round++) {
    clock += 900_000;
    const answers = await Promise.all([a, b, c].map(validate));
    assert.deepEqual(answers.map((r) => r.status), [200, 200, 200]);
    assert.equal(gw.state.refreshes, round);
  }

  assert.equal(gw.state.reused, 0);
  assert.deepEqual(signedOut, []);
});

test("a token that arrives while the generation record is read is taken, not refreshed again", async () => {
  const store = memoryStore();
  const slowStore = { read: async () => { await new Promise((r) => setTimeout(r, 50)); return store.read(); },
    write: (g) => store.write(g) };
  const [a, b] = tabs(2, { store: slowStore });
  await a.signIn(ada, "right");
  await settle(() => b.session());
  clock += 900_000;

  const [ta, tb] = await Promise.all([a.getAccessToken(), b.getAccessToken()]);

  assert.equal(ta, "at-2");
  assert.equal(tb, "at-2");
  assert.equal(gw.state.refreshes, 1);
});

test("after a sign-out, a tab without a session does not ask the gateway", async () => {
  const [a, b] = tabs(2, { mode: "cookie" });
  await a.signIn(ada, "right");
  await settle(() => b.session());
  await a.signOut();
  await settle(() => !b.session());
  const calls = gw.state.calls.length;

  assert.equal(await b.getAccessToken(), null);
  assert.equal(gw.state.calls.length, calls);
});

test("a tab that opens later takes the token from the others instead of refreshing", async () => {
  const shared = { locks: localLocks(), store: memoryStore() };
  const [a] = tabs(1, shared);
  await a.signIn(ada, "right");

  const [b] = tabs(1, shared);
  const token = await b.getAccessToken();

  assert.equal(token, "at-1");
  assert.equal(b.session().userId, "u-ada");
  assert.equal(gw.state.refreshes, 0);
});

test("signing out in one tab signs every tab out and revokes the refresh token", async () => {
  const [a, b, c] = tabs(3);
  await a.signIn(ada, "right");
  await settle(() => b.session() && c.session());
  const events = [];
  b.onAuthStateChange((e) => events.push(`b:${e}`));
  c.onAuthStateChange((e) => events.push(`c:${e}`));

  await a.signOut();
  await settle(() => !b.session() && !c.session());

  assert.deepEqual(events.sort(), ["b:INITIAL_SESSION", "b:SIGNED_OUT", "c:INITIAL_SESSION", "c:SIGNED_OUT"]);
  const revoke = gw.state.calls.find((x) => x.path === "/v1/auth/revoke");
  assert.deepEqual(revoke.body, { token: "rt-1", token_type_hint: "TOKEN_TYPE_HINT_REFRESH_TOKEN" });
  assert.equal(await b.getAccessToken(), null);
  assert.equal(gw.state.refreshes, 0);
});

test("cookie mode sends no refresh token, includes credentials and keeps none", async () => {
  const seen = [];
  const recording = (input, init) => { seen.push([String(input), init.credentials, init.body]); return fetch(input, init); };
  const c = tab({ mode: "cookie", fetch: recording });

  const before = await c.getAccessToken(); // a fresh page: no cookie, so the gateway answers 400
  await c.signIn(ada, "right");
  await c.signOut();

  assert.equal(before, null);
  assert.deepEqual(seen.map(([url, cred, body]) => [url.slice(gw.url.length), cred, body && JSON.parse(body)]), [
    ["/v1/auth/refresh", "include", {}],
    ["/v1/auth/signin", "include", { email: "ada@example.com", password: "right" }],
    ["/v1/auth/userinfo", "omit", undefined], // the bearer is the credential, not the cookie
    ["/v1/auth/revoke", "include", {}],
  ]);
  assert.equal(c.session(), null);
});

test("signUp signs in when sign-up is open and says verification is required otherwise", async () => {
  const c = tab();

  const open = await c.signUp({ email: "new@example.com" }, "pw-1");
  await c.signOut();
  gw.state.signupMode = "verify";
  const pending = await c.signUp({ email: "new2@example.com" }, "pw-2");
  const verified = await c.verify({ email: "new2@example.com" }, "123456");
  const badCode = await c.verify({ email: "new2@example.com" }, "000000").catch((e) => e);

  assert.equal(open.verificationRequired, false);
  assert.equal(open.session.userId, "u-new");
  assert.deepEqual(pending, { session: null, verificationRequired: true });
  assert.equal(verified.sessionId, "s-verified");
  assert.equal(badCode.reason, "CODE_INVALID");
  const bodies = gw.state.calls.filter((x) => !["/v1/auth/revoke", "/v1/auth/userinfo"].includes(x.path))
    .map((x) => [x.path, x.body]);
  assert.deepEqual(bodies, [
    ["/v1/auth/signup", { email: "new@example.com", password: "pw-1" }],
    ["/v1/auth/signup", { email: "new2@example.com", password: "pw-2" }],
    ["/v1/auth/verify", { email: "new2@example.com", code: "123456" }],
    ["/v1/auth/verify", { email: "new2@example.com", code: "000000" }],
  ]);
});

test("password change carries the bearer token; reset request and reset post their fields", async () => {
  const c = tab();
  await c.signIn(ada, "right");

  await c.changePassword("right", "newer");
  await c.requestPasswordReset({ username: "ada" });
  await c.resetPassword({ phone: "+15551234567" }, "654321", "newest");

  const calls = gw.state.calls.slice(2).map((x) => [x.path, x.body, x.authorization]); // after signin, userinfo
  assert.deepEqual(calls, [
    ["/v1/auth/password/change", { current_password: "right", new_password: "newer" }, "Bearer at-1"],
    ["/v1/auth/password/reset/request", { username: "ada" }, undefined],
    ["/v1/auth/password/reset", { phone: "+15551234567", code: "654321", new_password: "newest" }, undefined],
  ]);
});

test("onAuthStateChange returns an unsubscribe function", async () => {
  const c = tab();
  const events = [];
  const off = c.onAuthStateChange((e) => events.push(e));

  await c.signIn(ada, "right");
  off();
  await c.signOut();

  assert.deepEqual(events, ["INITIAL_SESSION", "SIGNED_IN"]);
});

test("a dead refresh token signs the tab out", async () => {
  const c = tab();
  const events = [];
  c.onAuthStateChange((e) => events.push(e));
  await c.signIn(ada, "right");
  gw.state.refresh.get("rt-1").spent = true; // spent elsewhere: reuse
  clock += 900_000;

  const token = await c.getAccessToken();

  assert.equal(token, null);
  assert.deepEqual(events, ["INITIAL_SESSION", "SIGNED_IN", "SIGNED_OUT"]);
});

test("network failures are AuthError NETWORK_ERROR", async () => {
  const c = tab({ baseUrl: "http://127.0.0.1:9" });

  const err = await c.signIn(ada, "right").catch((e) => e);

  assert.ok(err instanceof AuthError);
  assert.equal(err.reason, "NETWORK_ERROR");
});

test("every listener hears INITIAL_SESSION once: the session restored on creation", async () => {
  const stored = { token: null, get() { return this.token; }, set(t) { this.token = t; } };
  const first = tab({ refreshTokenStorage: stored });
  await first.signIn(ada, "right");
  first.close();
  const early = [];

  const page = tab({ refreshTokenStorage: stored }); // a page load with a stored refresh token
  page.onAuthStateChange((e, s) => early.push([e, s?.userId ?? null]));
  const restored = await page.initialSession();
  const late = [];
  page.onAuthStateChange((e, s) => late.push([e, s?.userId ?? null]));
  await settle(() => late.length === 1);
  await page.signOut();

  assert.equal(restored.userId, "u-ada");
  assert.equal(gw.state.refreshes, 1);
  assert.deepEqual(early, [["INITIAL_SESSION", "u-ada"], ["SIGNED_OUT", null]]);
  assert.deepEqual(late, [["INITIAL_SESSION", "u-ada"], ["SIGNED_OUT", null]]);
});

test("a page load without a session hears INITIAL_SESSION null and asks nothing", async () => {
  const c = tab();
  const events = [];
  c.onAuthStateChange((e, s) => events.push([e, s]));

  assert.equal(await c.initialSession(), null);
  await settle(() => events.length === 1);
  assert.deepEqual(events, [["INITIAL_SESSION", null]]);
  assert.deepEqual(gw.paths(), []);
});

/** Runs fn with a document whose cookie string is cookies() and a localStorage, as a page has. */
async function inPage(cookies, fn) {
  const items = new Map();
  globalThis.document = { get cookie() { return cookies(); } };
  globalThis.localStorage = {
    getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, String(v)),
    removeItem: (k) => items.delete(k), key: (i) => [...items.keys()][i] ?? null, get length() { return items.size; },
  };
  try {
    return await fn(items);
  } finally {
    delete globalThis.document;
    delete globalThis.localStorage;
  }
}

test("cookie mode: no presence cookie, no refresh request on a page load", async () => {
  let cookie = "theme=dark";
  await inPage(() => cookie, async (items) => {
    const signedOut = tab({ mode: "cookie" });
    assert.equal(await signedOut.initialSession(), null);
    assert.deepEqual(gw.paths(), []);
    assert.equal(await signedOut.getAccessToken(), null);
    assert.deepEqual(gw.paths(), []);

    cookie = "theme=dark; authsvc_session=1"; // as the gateway sets it beside the refresh cookie
    await signedOut.signIn(ada, "right");
    assert.equal(items.get(`authsvc:${gw.url}:presence-cookie`), "visible");
    const other = tab({ mode: "cookie" });
    await other.initialSession();
    // the signed-in page reads its profile once (userinfo); the other tab refreshes
    assert.deepEqual(gw.paths(), ["/v1/auth/signin", "/v1/auth/userinfo", "/v1/auth/refresh"]);
  });
});

test("cookie mode: a page that cannot see the presence cookie learns so and keeps asking", async () => {
  const warnings = [];
  const warn = console.warn;
  console.warn = (m) => warnings.push(m);
  try {
    await inPage(() => "", async (items) => {
      const c = tab({ mode: "cookie" });
      await c.initialSession(); // nothing learnt yet and no tab signed in: no request
      await c.signIn(ada, "right"); // the gateway set it, but this page does not see it

      const next = tab({ mode: "cookie" });
      await next.initialSession();

      assert.equal(items.get(`authsvc:${gw.url}:presence-cookie`), "invisible");
      assert.deepEqual(gw.paths(), ["/v1/auth/signin", "/v1/auth/userinfo", "/v1/auth/refresh"]);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /--presence-cookie-domain/);
    });
  } finally {
    console.warn = warn;
  }
});

test("fetch sends the bearer only to the gateway's origin unless apiOrigins lists others", async () => {
  const api = await startFakeGateway({ now });
  try {
    const seen = [];
    const recording = (input, init) => { seen.push(String(input instanceof Request ? input.url : input)); return fetch(input, init); };
    const c = tab({ fetch: recording });
    await c.signIn(ada, "right");
    const wide = tab({ fetch: recording, apiOrigins: [gw.url, `${api.url}/ignored/path`] });
    await wide.signIn(ada, "right");

    const refused = await c.fetch(`${api.url}/v1/auth/validate`, { method: "POST", body: "{}" }).catch((e) => e);
    const asRequest = await c.fetch(new Request(`${api.url}/v1/auth/validate`)).catch((e) => e);
    const own = await validate(c);
    await wide.fetch(`${api.url}/v1/auth/validate`, { method: "POST", body: "{}" });

    assert.equal(refused.reason, "API_ORIGIN_NOT_LISTED");
    assert.match(refused.message, new RegExp(api.url.replace(/[.]/g, "\\.")));
    assert.equal(asRequest.reason, "API_ORIGIN_NOT_LISTED");
    assert.equal(own.status, 200);
    assert.equal(seen.filter((u) => u.startsWith(api.url)).length, 1); // wide's call only
    assert.equal(api.state.calls[0].authorization, "Bearer at-2");
  } finally {
    await api.close();
  }
});

test("factor methods call the gateway's routes with the bearer and shape the answers", async () => {
  const c = tab();
  await c.signIn(ada, "right");

  const enrolled = await c.enrollTotp();
  const codes = await c.confirmTotp("123456");
  const factors = await c.listFactors();
  const stale = await c.removeTotp().catch((e) => e);
  gw.state.freshFactor = true; // as after signing in again with the second factor
  const fresh = await c.regenerateRecoveryCodes();
  await c.removeTotp();
  const passkeys = await c.listPasskeys();
  await c.removePasskey("cred-1");
  await c.resendVerification({ email: "ada@example.com" });

  assert.deepEqual(enrolled, { secret: "JBSWY3DPEHPK3PXP", uri: "otpauth://totp/authsvc:ada?secret=JBSWY3DPEHPK3PXP" });
  assert.equal(codes.length, 10);
  assert.deepEqual(factors, { totp: true, recoveryCodesLeft: 10, passkeys: 1 });
  assert.equal(stale.reason, "INSUFFICIENT_USER_AUTHENTICATION");
  assert.equal(stale.status, 401);
  assert.deepEqual(fresh, Array.from({ length: 10 }, (_, i) => `new-${i}`));
  assert.deepEqual(passkeys, [{ credentialId: "cred-1", name: "laptop", createdAt: new Date("2030-01-01T00:00:00Z"),
    lastUsedAt: null, synced: true }]);
  const calls = gw.state.calls.slice(1).map((x) => [x.method, x.path, x.body, x.authorization ?? null]);
  assert.deepEqual(calls, [
    ["GET", "/v1/auth/userinfo", {}, "Bearer at-1"], // the session's profile, read once
    ["POST", "/v1/auth/factors/totp/enroll", {}, "Bearer at-1"],
    ["POST", "/v1/auth/factors/totp/confirm", { code: "123456" }, "Bearer at-1"],
    ["GET", "/v1/auth/factors", {}, "Bearer at-1"],
    ["POST", "/v1/auth/factors/totp/remove", {}, "Bearer at-1"],
    ["POST", "/v1/auth/factors/recovery-codes", {}, "Bearer at-1"],
    ["POST", "/v1/auth/factors/totp/remove", {}, "Bearer at-1"],
    ["GET", "/v1/auth/passkeys", {}, "Bearer at-1"],
    ["POST", "/v1/auth/passkeys/remove", { credential_id: "cred-1" }, "Bearer at-1"],
    ["POST", "/v1/auth/verify/resend", { email: "ada@example.com" }, null],
  ]);
});

test("signOutEverywhere revokes every session with the bearer and signs every tab out", async () => {
  const [a, b] = tabs(2);
  const elsewhere = tab();
  await a.signIn(ada, "right");
  await elsewhere.signIn(ada, "right");
  await settle(() => b.session());

  await a.signOutEverywhere();
  await settle(() => !b.session());

  const revoke = gw.state.calls.find((x) => x.path === "/v1/auth/revoke");
  assert.deepEqual([revoke.body, revoke.authorization], [{ all_sessions: true }, "Bearer at-1"]);
  assert.equal(a.session(), null);
  assert.equal((await validate(elsewhere)).status, 401); // the other device's token is revoked
});

test("a call the browser refused is ORIGIN_NOT_ALLOWED when the gateway's origin check says so", async () => {
  // What a browser does to a page whose origin the gateway does not list: the call
  // rejects with a TypeError, but the origin check (readable by any origin) answers.
  const browserLike = (input, init) => (String(input).endsWith("/v1/auth/origin-check")
    ? fetch(input, init) : Promise.reject(new TypeError("Failed to fetch")));
  const c = tab({ fetch: browserLike });

  gw.state.originAllowed = false;
  const refused = await c.signIn(ada, "right").catch((e) => e);
  gw.state.originAllowed = true;
  const flaky = await c.signIn(ada, "right").catch((e) => e);
  const down = await tab({ baseUrl: "http://127.0.0.1:9" }).signIn(ada, "right").catch((e) => e);

  assert.equal(refused.reason, "ORIGIN_NOT_ALLOWED");
  assert.match(refused.message, /--cors-origins/);
  assert.equal(flaky.reason, "NETWORK_ERROR");
  assert.match(flaky.message, /answered its origin check/);
  assert.equal(down.reason, "NETWORK_ERROR");
  assert.equal(down.message, "The gateway could not be reached.");
});

test("the session says who is signed in, read once per session from userinfo", async () => {
  const c = tab();

  const signedIn = await c.signIn(ada, "right");
  clock += 900_000;
  await c.getAccessToken(); // a refresh: the same session, so no second read

  assert.deepEqual(signedIn.profile, { email: "ada@example.com", emailVerified: true });
  assert.deepEqual(c.session().profile, { email: "ada@example.com", emailVerified: true });
  const reads = gw.state.calls.filter((call) => call.path === "/v1/auth/userinfo");
  assert.deepEqual(reads.map((call) => call.authorization), ["Bearer at-1"]);
});

test("a session whose profile could not be read stands, and its next token reads it", async () => {
  gw.state.userinfoDown = true;
  const c = tab();

  const signedIn = await c.signIn(ada, "right");
  gw.state.userinfoDown = false;
  clock += 900_000;
  await c.getAccessToken();

  assert.equal(signedIn.profile, null);
  assert.equal(signedIn.userId, "u-ada");
  assert.deepEqual(c.session().profile, { email: "ada@example.com", emailVerified: true });
});

test("signInWithProvider navigates to the gateway's start with the return target", async () => {
  const went = [];
  const c = tab({ mode: "cookie", navigate: (url) => went.push(url) });
  await c.initialSession();
  const before = gw.paths().length;

  await c.signInWithProvider("corp-oidc", { redirectTo: "https://app.example/after?x=1#top" });

  assert.deepEqual(went, [`${gw.url}/v1/auth/providers/corp-oidc/start?redirect_to=` +
    encodeURIComponent("https://app.example/after?x=1#top")]);
  assert.equal(gw.paths().length, before); // the page leaves; nothing is posted
});

test("signInWithProvider returns to this page by default and escapes the provider id", async () => {
  const assigned = [];
  globalThis.location = { href: "https://app.example/account?tab=2", assign: (url) => assigned.push(url) };
  try {
    const c = tab({ mode: "cookie", baseUrl: "" }); // the gateway on the page's own origin

    await c.signInWithProvider("a/b?c");
    await c.signInWithProvider("github", { redirectTo: "/welcome" });

    assert.deepEqual(assigned, [
      `/v1/auth/providers/a%2Fb%3Fc/start?redirect_to=${encodeURIComponent("https://app.example/account?tab=2")}`,
      `/v1/auth/providers/github/start?redirect_to=${encodeURIComponent("https://app.example/welcome")}`,
    ]);
  } finally {
    delete globalThis.location;
  }
});

test("signInWithProvider needs cookie mode and a page, and navigates nowhere without them", async () => {
  const went = [];
  const body = tab({ mode: "body", navigate: (url) => went.push(url) });
  const pageless = tab({ mode: "cookie" }); // node: no location to assign

  const inBody = await body.signInWithProvider("github", { redirectTo: "https://app.example/" }).catch((e) => e);
  const noPage = await pageless.signInWithProvider("github", { redirectTo: "https://app.example/" }).catch((e) => e);

  assert.ok(inBody instanceof AuthError);
  assert.equal(inBody.reason, "COOKIE_MODE_REQUIRED");
  assert.equal(noPage.reason, "NAVIGATION_UNAVAILABLE");
  assert.deepEqual(went, []);
});

test("after a sign-out, the page a provider sends back to restores the session from the cookie", async () => {
  let cookie = "authsvc_session=1";
  await inPage(() => cookie, async () => {
    const store = memoryStore();
    const locks = localLocks();
    const first = tab({ mode: "cookie", store, locks, navigate: () => {} });
    await first.initialSession();
    await first.signIn(ada, "right");
    await first.signOut();
    cookie = "";
    const stillOut = tab({ mode: "cookie", store, locks });
    await stillOut.initialSession();
    const asked = gw.paths().length;

    await first.signInWithProvider("corp-oidc", { redirectTo: "https://app.example/" });
    cookie = "authsvc_session=1"; // the gateway's callback set the session cookies
    const back = tab({ mode: "cookie", store, locks }); // the page the provider sent back to
    await back.initialSession();

    // stillOut asked nothing (the sign-out was the last word); back asks for the session
    assert.deepEqual(gw.paths().slice(asked), ["/v1/auth/refresh"]);
  });
});
