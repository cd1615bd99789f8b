// A stand-in for authsvc's HTTP gateway, for the client's unit tests: the
// documented paths, bodies and error shape (google.rpc.Status with an
// ErrorInfo reason), with refresh-token rotation and reuse detection but no
// grace interval, so a duplicate refresh shows up as REFRESH_TOKEN_REUSED.
// The real gateway and authsvc are exercised by tests/system/test_browser.py.
import http from "node:http";

export async function startFakeGateway({ now }) {
  const state = {
    calls: [], // { path, body, authorization }
    access: new Map(), // token -> { expiresAt, sessionId, revoked }
    refresh: new Map(), // token -> { spent, sessionId }
    users: new Map([["ada@example.com", { id: "u-ada", password: "right" }]]),
    signupMode: "open",
    next: 0,
    reused: 0,
    refreshes: 0,
    expireNow: false, // next Validate answers TOKEN_EXPIRED whatever the token
    retryAfter: null,
    expiresIn: 900, // seconds
    totp: "none", // none | pending | active
    recoveryCodes: 0,
    freshFactor: false, // whether access tokens carry a fresh second factor (step-up)
    originAllowed: true, // what the origin check answers
    userinfoDown: false, // userinfo answers 503
  };

  const pair = (sessionId, userId) => {
    state.next += 1;
    const at = `at-${state.next}`;
    const rt = `rt-${state.next}`;
    state.access.set(at, { expiresAt: now() + state.expiresIn * 1000, sessionId, userId });
    state.refresh.set(rt, { spent: false, sessionId, userId });
    return { access_token: at, token_type: "Bearer", expires_in: state.expiresIn, refresh_token: rt,
      refresh_expires_in: 86400, session_id: sessionId, user_id: userId, device_token: `dt-${state.next}` };
  };
  const status = (res, httpStatus, code, reason, message, extra = []) => {
    res.writeHead(httpStatus, { "content-type": "application/json",
      ...(httpStatus === 401 ? { "www-authenticate": `Bearer realm="authsvc", error="invalid_token"` } : {}),
      ...(state.retryAfter && httpStatus === 429 ? { "retry-after": String(state.retryAfter) } : {}) });
    res.end(JSON.stringify({ code, message, details: [
      { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason, domain: "authsvc" }, ...extra] }));
  };
  const ok = (res, body) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const bearer = (req) => /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
  const checkAccess = (req, res) => {
    const token = bearer(req);
    const a = state.access.get(token);
    if (!a) return status(res, 401, 16, "TOKEN_INVALID", "The access token is not valid."), null;
    if (a.revoked) return status(res, 401, 16, "TOKEN_REVOKED", "The session has ended."), null;
    if (state.expireNow || now() >= a.expiresAt) {
      state.expireNow = false;
      return status(res, 401, 16, "TOKEN_EXPIRED", "The access token has expired."), null;
    }
    return a;
  };

  const routes = {
    "/v1/auth/signin": (body, req, res) => {
      const u = state.users.get(body.email?.toLowerCase());
      if (state.retryAfter) return status(res, 429, 8, "RATE_LIMITED", "Too many attempts.");
      if (!u || u.password !== body.password) return status(res, 401, 16, "INVALID_CREDENTIALS", "Wrong identifier or password.");
      ok(res, pair(`s-${state.next + 1}`, u.id));
    },
    "/v1/auth/refresh": (body, req, res) => {
      if (!body.refresh_token) {
        return status(res, 400, 3, "INVALID_ARGUMENT", "refresh_token: must not be empty",
          [{ "@type": "type.googleapis.com/google.rpc.BadRequest", field_violations: [{ field: "refresh_token", description: "must not be empty" }] }]);
      }
      const r = state.refresh.get(body.refresh_token);
      if (!r) return status(res, 401, 16, "REFRESH_TOKEN_INVALID", "The refresh token is not valid.");
      if (r.spent) {
        state.reused += 1;
        return status(res, 401, 16, "REFRESH_TOKEN_REUSED", "The refresh token was used already.");
      }
      r.spent = true;
      state.refreshes += 1;
      ok(res, pair(r.sessionId, r.userId));
    },
    "/v1/auth/revoke": (body, req, res) => {
      if (body.all_sessions) {
        const a = checkAccess(req, res);
        if (!a) return;
        for (const x of state.access.values()) if (x.userId === a.userId) x.revoked = true;
        for (const x of state.refresh.values()) if (x.userId === a.userId) x.spent = true;
        return ok(res, {});
      }
      const r = state.refresh.get(body.token);
      if (!body.token) return status(res, 400, 3, "INVALID_ARGUMENT", "token: must not be empty");
      if (r) for (const a of state.access.values()) if (a.sessionId === r.sessionId) a.revoked = true;
      ok(res, {});
    },
    "/v1/auth/validate": (body, req, res) => {
      const a = checkAccess(req, res);
      if (a) ok(res, { user_id: a.userId, session_id: a.sessionId });
    },
    "/v1/auth/signup": (body, req, res) => {
      state.users.set(body.email, { id: "u-new", password: body.password });
      if (state.signupMode === "open") ok(res, pair("s-new", "u-new"));
      else ok(res, {});
    },
    "/v1/auth/verify": (body, req, res) => {
      if (body.code !== "123456") return status(res, 401, 16, "CODE_INVALID", "The code is not valid.");
      ok(res, pair("s-verified", "u-new"));
    },
    "/v1/auth/password/change": (body, req, res) => {
      if (checkAccess(req, res)) ok(res, {});
    },
    "/v1/auth/password/reset/request": (body, req, res) => ok(res, {}),
    "/v1/auth/verify/resend": (body, req, res) => ok(res, {}),
    "/v1/auth/factors/totp/enroll": (body, req, res) => {
      if (!checkAccess(req, res)) return;
      state.totp = "pending";
      ok(res, { secret: "JBSWY3DPEHPK3PXP", uri: "otpauth://totp/authsvc:ada?secret=JBSWY3DPEHPK3PXP" });
    },
    "/v1/auth/factors/totp/confirm": (body, req, res) => {
      if (!checkAccess(req, res)) return;
      if (state.totp !== "pending" || body.code !== "123456") return status(res, 401, 16, "CODE_INVALID", "The code is not valid.");
      state.totp = "active";
      state.recoveryCodes = 10;
      ok(res, { recovery_codes: Array.from({ length: 10 }, (_, i) => `rc-${i}`) });
    },
    "/v1/auth/factors/totp/remove": (body, req, res) => {
      if (!checkAccess(req, res)) return;
      if (!state.freshFactor) return status(res, 401, 16, "INSUFFICIENT_USER_AUTHENTICATION", "A stronger or more recent authentication is required");
      state.totp = "none";
      state.recoveryCodes = 0;
      ok(res, {});
    },
    "/v1/auth/factors/recovery-codes": (body, req, res) => {
      if (!checkAccess(req, res)) return;
      if (!state.freshFactor) return status(res, 401, 16, "INSUFFICIENT_USER_AUTHENTICATION", "A stronger or more recent authentication is required");
      state.recoveryCodes = 10;
      ok(res, { recovery_codes: Array.from({ length: 10 }, (_, i) => `new-${i}`) });
    },
    "GET /v1/auth/factors": (body, req, res) => {
      if (checkAccess(req, res)) ok(res, { totp: state.totp === "active", recovery_codes_left: state.recoveryCodes, passkeys: 1 });
    },
    "GET /v1/auth/passkeys": (body, req, res) => {
      if (checkAccess(req, res)) {
        ok(res, { passkeys: [{ credential_id: "cred-1", name: "laptop", created_at: "2030-01-01T00:00:00Z", synced: true }] });
      }
    },
    "/v1/auth/passkeys/remove": (body, req, res) => {
      if (checkAccess(req, res)) ok(res, {});
    },
    "GET /v1/auth/origin-check": (body, req, res) => {
      res.writeHead(200, { "content-type": "application/json", "access-control-allow-origin": "*" });
      res.end(JSON.stringify({ origin: req.headers.origin ?? "", allowed: state.originAllowed }));
    },
    "/v1/auth/password/reset": (body, req, res) => ok(res, {}),
  };

  // GET /v1/auth/userinfo: the token's claims and its user's OIDC profile claims.
  const userinfo = (req, res) => {
    if (state.userinfoDown) return status(res, 503, 14, "UNAVAILABLE", "authsvc is unavailable.");
    const a = checkAccess(req, res);
    if (!a) return;
    const [email] = [...state.users].find(([, u]) => u.id === a.userId) ?? [];
    ok(res, { sub: a.userId, sid: a.sessionId, ...(email ? { email, email_verified: true } : {}) });
  };

  const server = http.createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => { raw += c; });
    req.on("end", () => {
      const body = raw ? JSON.parse(raw) : {};
      state.calls.push({ path: req.url, method: req.method, body, authorization: req.headers.authorization,
        contentType: req.headers["content-type"] });
      if (req.url === "/v1/auth/userinfo" && req.method === "GET") return userinfo(req, res);
      const route = req.method === "GET" ? routes[`GET ${req.url}`] : req.method === "POST" ? routes[req.url] : undefined;
      if (!route) return status(res, 404, 5, "NOT_FOUND", "Not Found");
      route(body, req, res);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    state,
    url: `http://127.0.0.1:${port}`,
    paths: () => state.calls.map((c) => c.path),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
