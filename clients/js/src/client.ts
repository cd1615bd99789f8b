/**
 * createAuthClient: sign-in, sign-up and passwords against authsvc's HTTP
 * gateway, second factors and passkeys, an access token that is refreshed
 * before it expires, and a fetch() that carries it to the API origins it is
 * meant for. One refresh per expiry across every tab of an origin (see
 * coordination.ts); authsvc's grace interval, which answers a spent refresh
 * token presented again within seconds with the identical successor, is the
 * second safety net.
 *
 * On creation the client restores the session (a refresh) and tells each
 * listener once, with INITIAL_SESSION, what it found. In cookie mode it skips
 * that refresh when the gateway's presence cookie (browser.ts) says there is
 * no refresh cookie to spend, so a signed-out page load makes no request.
 */
import {
  apiOriginList, diagnose, originOf, PRESENCE_COOKIE, presenceMemory, presenceOf, type PresenceMemory,
} from "./browser.js";
import { AuthError, errorFrom, reasonOf } from "./errors.js";
import type { AnswerOf, GetAnswerOf, GetPath, PostPath, RequestOf, TokenAnswer } from "./wire.js";
import {
  broadcastChannel, indexedDbStore, localLocks, memoryStore, webLocks,
  type Channel, type Generation, type GenerationStore, type Locks, type Message,
} from "./coordination.js";

export type Identifier = { email: string } | { phone: string } | { username: string };

/**
 * Who is signed in, from GET /v1/auth/userinfo (OpenID Connect's standard
 * claims). A property is absent when the user has no such identifier; a
 * username has no verified flag.
 */
export interface UserProfile {
  email?: string;
  emailVerified?: boolean;
  phoneNumber?: string;
  phoneNumberVerified?: boolean;
  preferredUsername?: string;
}

/** What the page may know of the session: no token in it. */
export interface SessionInfo {
  userId: string;
  sessionId: string;
  /** When the current access token expires, ms since the epoch (this tab's clock). */
  expiresAt: number;
  /**
   * The user's identifiers, read once per session (one GET of userinfo when it
   * starts, shared with the other tabs); null when the gateway could not answer,
   * in which case the next token of the session reads it again.
   */
  profile: UserProfile | null;
}

/**
 * INITIAL_SESSION is the first event every listener gets, once: the session
 * restored on page load, or null. Later events are changes after it.
 */
export type AuthEvent = "INITIAL_SESSION" | "SIGNED_IN" | "TOKEN_REFRESHED" | "SIGNED_OUT";
export type AuthListener = (event: AuthEvent, session: SessionInfo | null) => void;

/** Where body mode keeps the refresh token. The default is this tab's memory. */
export interface TokenStorage {
  get(): string | null | Promise<string | null>;
  set(token: string | null): void | Promise<void>;
}

/** Where the client keeps each identifier's device_token (default: localStorage, else memory). */
export interface DeviceTokenStorage {
  get(identifier: string): string | null;
  set(identifier: string, token: string): void;
}

export interface AuthClientOptions {
  /** The gateway, e.g. "https://auth.example.com" ("" for the page's own origin). */
  baseUrl: string;
  /**
   * "cookie" (default): the gateway runs with --refresh-cookie and keeps the
   * refresh token in an HttpOnly cookie; the client never sees it.
   * "body": the refresh token comes in the JSON body and is kept in
   * refreshTokenStorage.
   */
  mode?: "cookie" | "body";
  /** Seconds before expiry to refresh (default 60; at most a quarter of the token's lifetime). */
  refreshMargin?: number;
  refreshTokenStorage?: TokenStorage;
  /**
   * device_token of each identifier, sent with its next sign-in so that
   * guesses elsewhere cannot throttle this device out (not a credential).
   */
  deviceTokens?: DeviceTokenStorage;
  /** How long to wait for another tab's new token before refreshing alone (ms, default 3000). */
  peerWait?: number;
  fetch?: typeof globalThis.fetch;
  /** The clock, ms since the epoch (tests inject one). */
  now?: () => number;
  /** Cross-tab coordination; defaults to navigator.locks, IndexedDB and BroadcastChannel. */
  locks?: Locks;
  store?: GenerationStore;
  channel?: Channel | null;
  /**
   * The origins fetch() sends the access token to (default: the gateway's
   * own origin only). A URL on any other origin makes fetch() throw
   * API_ORIGIN_NOT_LISTED without sending anything.
   */
  apiOrigins?: string[];
  /**
   * The name of the gateway's script-readable presence cookie (default
   * "authsvc_session"; null: never look, always try the refresh). Cookie
   * mode only.
   */
  presenceCookie?: string | null;
  /**
   * How signInWithProvider leaves the page (default: location.assign). Tests
   * and frameworks with their own router may hand in another.
   */
  navigate?: (url: string) => void;
}

export interface ProviderSignInOptions {
  /**
   * Where the browser comes back to once signed in (default: this page,
   * location.href). Resolved against the page; authsvc accepts only targets
   * under its AUTHSVC_REDIRECT_ORIGINS and refuses any other before the
   * provider is asked.
   */
  redirectTo?: string;
}

/** An authenticator app being enrolled: show uri as a QR code, or secret for typing in. */
export interface TotpEnrollment {
  secret: string;
  uri: string;
}

/** Which second factors the signed-in user has. */
export interface Factors {
  totp: boolean;
  recoveryCodesLeft: number;
  passkeys: number;
}

/** One of the signed-in user's passkeys. */
export interface PasskeyInfo {
  credentialId: string;
  name: string;
  createdAt: Date | null;
  lastUsedAt: Date | null;
  /** True for a synced (backed-up, multi-device) passkey. */
  synced: boolean;
}

export interface SignUpResult {
  /** The new session when sign-up signs in at once (AUTHSVC_SIGNUP=open). */
  session: SessionInfo | null;
  /** True when the identifier must be verified first (AUTHSVC_SIGNUP=verify). */
  verificationRequired: boolean;
}

export interface PasskeyRegistration {
  credentialId: string;
  recoveryCodes: string[];
}

/** WebAuthn's JSON helpers (Chromium 129+, Firefox 119+, Safari 18.4+). */
interface PublicKeyCredentialJSONStatics {
  parseCreationOptionsFromJSON(options: unknown): PublicKeyCredentialCreationOptions;
  parseRequestOptionsFromJSON(options: unknown): PublicKeyCredentialRequestOptions;
}

function webauthn(): PublicKeyCredentialJSONStatics {
  const statics = globalThis.PublicKeyCredential as unknown as Partial<PublicKeyCredentialJSONStatics> | undefined;
  if (!statics?.parseCreationOptionsFromJSON || !statics.parseRequestOptionsFromJSON) {
    throw new AuthError("PASSKEYS_UNSUPPORTED", "This browser cannot use passkeys.");
  }
  return statics as PublicKeyCredentialJSONStatics;
}

function credentialJson(credential: Credential | null): string {
  const c = credential as (Credential & { toJSON(): unknown }) | null;
  if (c === null || typeof c.toJSON !== "function") {
    throw new AuthError("PASSKEY_CANCELLED", "No passkey was given.");
  }
  return JSON.stringify(c.toJSON());
}

export interface AuthClient {
  signIn(identifier: Identifier, password: string): Promise<SessionInfo>;
  signUp(identifier: Identifier, password: string): Promise<SignUpResult>;
  verify(identifier: Identifier, code: string): Promise<SessionInfo | null>;
  signOut(): Promise<void>;
  changePassword(currentPassword: string, newPassword: string): Promise<void>;
  requestPasswordReset(identifier: Identifier): Promise<void>;
  resetPassword(identifier: Identifier, code: string, newPassword: string): Promise<void>;
  /** Finishes a sign-in that failed with reason MFA_REQUIRED (the AuthError's
   * metadata.mfa_token) with an authenticator-app code, a recovery code or, with
   * `{ passkey: true }`, the user's passkey. */
  completeSignIn(mfaToken: string, factor: { totp: string } | { recoveryCode: string } | { passkey: true }): Promise<SessionInfo>;
  /** Registers a passkey for the signed-in user (navigator.credentials.create); its id and
   * the ten new recovery codes. */
  registerPasskey(name?: string): Promise<PasskeyRegistration>;
  /** Passwordless sign-in with a discoverable passkey (navigator.credentials.get), when the
   * server allows it (AUTHSVC_PASSKEY_SIGN_IN=true). */
  signInWithPasskey(): Promise<SessionInfo>;
  /**
   * Signs in through another identity provider (an id from authsvc's providers
   * file): navigates this page to the gateway's /v1/auth/providers/{id}/start,
   * which sends the browser on to the provider; its callback sets the session
   * cookie and comes back to redirectTo, where the new page's client restores
   * the session as on any page load (INITIAL_SESSION, then the session in
   * every tab). Cookie mode only: throws COOKIE_MODE_REQUIRED in body mode.
   * The promise settles once the navigation has been asked for.
   */
  signInWithProvider(provider: string, options?: ProviderSignInOptions): Promise<void>;
  /** Starts enrolling an authenticator app (bearer; a fresh second factor once the user has one). */
  enrollTotp(): Promise<TotpEnrollment>;
  /** Activates the enrolled app with its first code; the ten recovery codes, shown this once. */
  confirmTotp(code: string): Promise<string[]>;
  /** Removes the authenticator app and its recovery codes. Needs a fresh second factor: an
   * AuthError INSUFFICIENT_USER_AUTHENTICATION says to sign in again with it first. */
  removeTotp(): Promise<void>;
  /** Voids every recovery code and returns ten new ones (fresh second factor, as removeTotp). */
  regenerateRecoveryCodes(): Promise<string[]>;
  /** Which second factors the signed-in user has. */
  listFactors(): Promise<Factors>;
  /** The signed-in user's passkeys. */
  listPasskeys(): Promise<PasskeyInfo[]>;
  /** Removes one passkey (fresh second factor, as removeTotp). */
  removePasskey(credentialId: string): Promise<void>;
  /** Sends a new verification code to an email address or phone number. */
  resendVerification(identifier: { email: string } | { phone: string }): Promise<void>;
  /** Ends every session of the signed-in user, on every device, and signs every tab out. */
  signOutEverywhere(): Promise<void>;
  /** The session restored on page load, or null: settles once, when INITIAL_SESSION is told. */
  initialSession(): Promise<SessionInfo | null>;
  /** A valid access token (refreshed when it is within the margin of expiry), or null when signed out. */
  getAccessToken(): Promise<string | null>;
  /** fetch with Authorization: Bearer; one retry after a refresh on 401 TOKEN_EXPIRED. Only
   * to apiOrigins: another origin throws API_ORIGIN_NOT_LISTED, and nothing is sent. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  onAuthStateChange(listener: AuthListener): () => void;
  session(): SessionInfo | null;
  /** Leaves the channel and releases this tab's presence. */
  close(): void;
}

export function createAuthClient(options: AuthClientOptions): AuthClient {
  return new Client(options);
}

interface Held extends SessionInfo {
  accessToken: string;
  lifetime: number;
  gen: number;
}

const REFRESH_HINT = "TOKEN_TYPE_HINT_REFRESH_TOKEN";

function defaultDeviceTokens(namespace: string): DeviceTokenStorage {
  const ls = (globalThis as { localStorage?: Storage }).localStorage;
  if (ls) {
    return {
      get: (id) => ls.getItem(`${namespace}:device:${id}`),
      set: (id, token) => ls.setItem(`${namespace}:device:${id}`, token),
    };
  }
  const map = new Map<string, string>();
  return { get: (id) => map.get(id) ?? null, set: (id, token) => { map.set(id, token); } };
}

function identifierKey(identifier: Identifier): string {
  const [kind, value] = Object.entries(identifier)[0] ?? ["", ""];
  return `${kind}:${String(value).toLowerCase()}`;
}

function memoryTokens(): TokenStorage {
  let token: string | null = null;
  return { get: () => token, set: (t) => { token = t; } };
}

class Client implements AuthClient {
  private readonly base: string;
  private readonly mode: "cookie" | "body";
  private readonly marginMs: number;
  private readonly peerWait: number;
  private readonly tokens: TokenStorage;
  private readonly devices: DeviceTokenStorage;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly now: () => number;
  private readonly locks: Locks;
  private readonly store: GenerationStore;
  private readonly channel: Channel | null;
  private readonly lockName: string;
  private readonly tabName: string;
  private readonly releasePresence: (() => void) | undefined;
  private readonly listeners = new Set<AuthListener>();
  private readonly waiters = new Set<() => void>();
  private readonly apiOrigins: Set<string>;
  private readonly presenceName: string | null;
  private readonly presence: PresenceMemory;
  private readonly navigate: ((url: string) => void) | undefined;
  /** Listeners not yet told INITIAL_SESSION: they hear nothing else before it. */
  private readonly untold = new Set<AuthListener>();
  private readonly initial: Promise<SessionInfo | null>;
  private initialDone = false;
  private held: Held | null = null;
  private gen = 0;
  private inflight: Promise<string | null> | null = null;

  constructor(o: AuthClientOptions) {
    this.base = o.baseUrl.replace(/\/+$/, "");
    this.mode = o.mode ?? "cookie";
    this.marginMs = (o.refreshMargin ?? 60) * 1000;
    this.peerWait = o.peerWait ?? 3000;
    this.tokens = o.refreshTokenStorage ?? memoryTokens();
    this.fetchImpl = o.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.now = o.now ?? Date.now;
    const ns = `authsvc:${this.base || "same-origin"}`;
    this.devices = o.deviceTokens ?? defaultDeviceTokens(ns);
    this.lockName = `${ns}:refresh`;
    this.tabName = `${ns}:tab:${Math.random().toString(36).slice(2)}${this.now().toString(36)}`;
    this.locks = o.locks ?? webLocks() ?? localLocks();
    this.store = o.store ?? indexedDbStore(ns) ?? memoryStore();
    this.channel = o.channel === undefined ? broadcastChannel(ns) : o.channel;
    this.channel?.onMessage((m) => { void this.onMessage(m); });
    this.releasePresence = this.locks.hold?.(this.tabName);
    this.apiOrigins = apiOriginList(o.apiOrigins, this.base);
    this.presenceName = this.mode === "cookie" ? (o.presenceCookie === undefined ? PRESENCE_COOKIE : o.presenceCookie) : null;
    this.presence = presenceMemory(`${ns}:presence-cookie`);
    this.navigate = o.navigate ?? pageNavigation();
    this.initial = this.restore();
  }

  /** The restore on creation; then INITIAL_SESSION to every listener so far. */
  private async restore(): Promise<SessionInfo | null> {
    try {
      await this.getAccessToken();
    } catch {
      // unreachable, or refused: no session to show, and the next call will say why
    }
    this.initialDone = true;
    this.tellInitial();
    return this.session();
  }

  private tellInitial(): void {
    const s = this.session();
    for (const l of [...this.untold]) {
      this.untold.delete(l);
      try {
        l("INITIAL_SESSION", s);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  initialSession(): Promise<SessionInfo | null> {
    return this.initial;
  }

  // --- the session -----------------------------------------------------------

  session(): SessionInfo | null {
    const h = this.held;
    return h ? { userId: h.userId, sessionId: h.sessionId, expiresAt: h.expiresAt, profile: h.profile } : null;
  }

  onAuthStateChange(listener: AuthListener): () => void {
    this.listeners.add(listener);
    this.untold.add(listener);
    if (this.initialDone) queueMicrotask(() => this.tellInitial());
    return () => { this.listeners.delete(listener); this.untold.delete(listener); };
  }

  close(): void {
    this.channel?.close();
    this.releasePresence?.();
  }

  async getAccessToken(): Promise<string | null> {
    const h = this.held;
    if (h && !this.due(h)) return h.accessToken;
    return this.refresh(h?.accessToken ?? null);
  }

  async fetch(input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> {
    const origin = originOf(input);
    if (origin === null || !this.apiOrigins.has(origin)) {
      throw new AuthError("API_ORIGIN_NOT_LISTED",
        `fetch() sends the access token only to the apiOrigins (${[...this.apiOrigins].join(", ")}); ` +
        `${origin ?? "this URL"} is not one of them. List it, or use the global fetch for calls that need no token.`);
    }
    const token = await this.getAccessToken();
    if (token === null) throw new AuthError("NOT_SIGNED_IN", "Sign in first.");
    const first = await this.send(input, init, token);
    if (first.status !== 401 || !(await isExpiredAnswer(first))) return first;
    const fresh = await this.refresh(token);
    if (fresh === null) return first;
    return this.send(input, init, fresh);
  }

  // --- calls -----------------------------------------------------------------

  signIn(identifier: Identifier, password: string): Promise<SessionInfo> {
    return this.locks.request(this.lockName, async () => {
      const key = identifierKey(identifier);
      const device = this.devices.get(key);
      const answer = await this.post("/v1/auth/signin", { ...identifier, password, ...(device ? { device_token: device } : {}) });
      if (typeof answer.device_token === "string" && answer.device_token !== "") this.devices.set(key, answer.device_token);
      return this.accept(answer, "SIGNED_IN");
    });
  }

  signUp(identifier: Identifier, password: string): Promise<SignUpResult> {
    return this.locks.request(this.lockName, async () => {
      const answer = await this.post("/v1/auth/signup", { ...identifier, password });
      if (!hasTokens(answer)) return { session: null, verificationRequired: true };
      return { session: await this.accept(answer, "SIGNED_IN"), verificationRequired: false };
    });
  }

  verify(identifier: Identifier, code: string): Promise<SessionInfo | null> {
    return this.locks.request(this.lockName, async () => {
      const answer = await this.post("/v1/auth/verify", { ...identifier, code });
      return hasTokens(answer) ? this.accept(answer, "SIGNED_IN") : null;
    });
  }

  async registerPasskey(name = ""): Promise<PasskeyRegistration> {
    const begun = await this.authorized("/v1/auth/passkeys/registration/begin", {});
    const options = webauthn().parseCreationOptionsFromJSON(JSON.parse(String(begun.options_json)));
    const credential = await navigator.credentials.create({ publicKey: options });
    const done = await this.authorized("/v1/auth/passkeys/registration/finish", {
      ceremony_id: begun.ceremony_id, credential_json: credentialJson(credential), name,
    });
    return { credentialId: String(done.credential_id), recoveryCodes: (done.recovery_codes as string[]) ?? [] };
  }

  completeSignIn(mfaToken: string, factor: { totp: string } | { recoveryCode: string } | { passkey: true }): Promise<SessionInfo> {
    return this.locks.request(this.lockName, async () => {
      let body: RequestOf<"/v1/auth/signin/complete">;
      if ("totp" in factor) {
        body = { mfa_token: mfaToken, totp: factor.totp };
      } else if ("recoveryCode" in factor) {
        body = { mfa_token: mfaToken, recovery_code: factor.recoveryCode };
      } else {
        const begun = await this.post("/v1/auth/passkeys/assertion/begin", { mfa_token: mfaToken });
        const options = webauthn().parseRequestOptionsFromJSON(JSON.parse(String(begun.options_json)));
        const credential = await navigator.credentials.get({ publicKey: options });
        body = { mfa_token: mfaToken, passkey: { ceremony_id: begun.ceremony_id, credential_json: credentialJson(credential) } };
      }
      return this.accept(await this.post("/v1/auth/signin/complete", body), "SIGNED_IN");
    });
  }

  signInWithPasskey(): Promise<SessionInfo> {
    return this.locks.request(this.lockName, async () => {
      const begun = await this.post("/v1/auth/passkeys/assertion/begin", {});
      const options = webauthn().parseRequestOptionsFromJSON(JSON.parse(String(begun.options_json)));
      const credential = await navigator.credentials.get({ publicKey: options });
      const answer = await this.post("/v1/auth/passkeys/signin", {
        assertion: { ceremony_id: begun.ceremony_id, credential_json: credentialJson(credential) },
      });
      return this.accept(answer, "SIGNED_IN");
    });
  }

  async signInWithProvider(provider: string, options: ProviderSignInOptions = {}): Promise<void> {
    if (this.mode !== "cookie") {
      throw new AuthError("COOKIE_MODE_REQUIRED",
        "signInWithProvider needs cookie mode: the provider's callback hands the session to the browser as a cookie.");
    }
    const navigate = this.navigate;
    if (navigate === undefined) {
      throw new AuthError("NAVIGATION_UNAVAILABLE", "There is no page to navigate (no location); pass options.navigate.");
    }
    const here = (globalThis as { location?: { href?: string } }).location?.href;
    let target: string;
    try {
      target = new URL(options.redirectTo ?? here ?? "", here).href;
    } catch (e) {
      throw new AuthError("NAVIGATION_UNAVAILABLE", "redirectTo is not a URL (and there is no page to default to).", { cause: e });
    }
    // A sign-out recorded for this origin would make the page the provider sends the
    // browser back to skip its restore; the callback brings a session, so take it back.
    await this.locks.request(this.lockName, async () => {
      const g = await this.store.read();
      if (g?.signedOut) await this.store.write({ gen: g.gen, expiresAt: 0, signedOut: false });
    });
    const start = `${this.base}/v1/auth/providers/${encodeURIComponent(provider)}/start` +
      `?redirect_to=${encodeURIComponent(target)}`;
    navigate(start);
  }

  /** POST with the access token (one retry after a refresh, as fetch); the JSON answer. */
  private async authorized<P extends PostPath>(path: P, body: RequestOf<P>): Promise<AnswerOf<P>> {
    const resp = await this.gatewayFetch(path, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      credentials: this.credentials(),
    });
    return this.answerOf<AnswerOf<P>>(resp);
  }

  /** GET with the access token; the JSON answer. */
  private async authorizedGet<P extends GetPath>(path: P): Promise<GetAnswerOf<P>> {
    return this.answerOf<GetAnswerOf<P>>(await this.gatewayFetch(path, { method: "GET" }));
  }

  /** this.fetch to a gateway path, a failed fetch diagnosed (ORIGIN_NOT_ALLOWED or NETWORK_ERROR). */
  private async gatewayFetch(path: string, init: RequestInit): Promise<Response> {
    try {
      return await this.fetch(this.url(path), init);
    } catch (e) {
      if (e instanceof AuthError) throw e;
      throw await diagnose(this.base, this.fetchImpl, e);
    }
  }

  // --- second factors, passkeys, verification ---------------------------------

  async enrollTotp(): Promise<TotpEnrollment> {
    const a = await this.authorized("/v1/auth/factors/totp/enroll", {});
    return { secret: String(a.secret ?? ""), uri: String(a.uri ?? "") };
  }

  async confirmTotp(code: string): Promise<string[]> {
    return (await this.authorized("/v1/auth/factors/totp/confirm", { code })).recovery_codes ?? [];
  }

  async removeTotp(): Promise<void> {
    await this.authorized("/v1/auth/factors/totp/remove", {});
  }

  async regenerateRecoveryCodes(): Promise<string[]> {
    return (await this.authorized("/v1/auth/factors/recovery-codes", {})).recovery_codes ?? [];
  }

  async listFactors(): Promise<Factors> {
    const a = await this.authorizedGet("/v1/auth/factors");
    return { totp: a.totp === true, recoveryCodesLeft: a.recovery_codes_left ?? 0, passkeys: a.passkeys ?? 0 };
  }

  async listPasskeys(): Promise<PasskeyInfo[]> {
    const a = await this.authorizedGet("/v1/auth/passkeys");
    const when = (t: string | undefined) => (t ? new Date(t) : null);
    return (a.passkeys ?? []).map((p) => ({
      credentialId: p.credential_id ?? "", name: p.name ?? "", createdAt: when(p.created_at),
      lastUsedAt: when(p.last_used_at), synced: p.synced === true,
    }));
  }

  async removePasskey(credentialId: string): Promise<void> {
    await this.authorized("/v1/auth/passkeys/remove", { credential_id: credentialId });
  }

  async resendVerification(identifier: { email: string } | { phone: string }): Promise<void> {
    await this.post("/v1/auth/verify/resend", { ...identifier });
  }

  async signOutEverywhere(): Promise<void> {
    // The bearer names the user; in cookie mode the gateway also clears the refresh cookie.
    await this.authorized("/v1/auth/revoke", { all_sessions: true });
    await this.locks.request(this.lockName, () => this.signedOut());
  }

  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    const resp = await this.gatewayFetch("/v1/auth/password/change", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ current_password: currentPassword, new_password: newPassword }),
      credentials: this.credentials(),
    });
    const answer = await this.answerOf<AnswerOf<"/v1/auth/password/change"> & TokenAnswer>(resp);
    if (hasTokens(answer)) {
      await this.locks.request(this.lockName, () => this.accept(answer, "TOKEN_REFRESHED"));
    }
  }

  async requestPasswordReset(identifier: Identifier): Promise<void> {
    await this.post("/v1/auth/password/reset/request", { ...identifier });
  }

  async resetPassword(identifier: Identifier, code: string, newPassword: string): Promise<void> {
    await this.post("/v1/auth/password/reset", { ...identifier, code, new_password: newPassword });
  }

  signOut(): Promise<void> {
    return this.locks.request(this.lockName, async () => {
      let failure: unknown = null;
      try {
        if (this.mode === "cookie") {
          await this.post("/v1/auth/revoke", {}); // the gateway takes the token from the cookie
        } else {
          const token = await this.tokens.get();
          if (token) await this.post("/v1/auth/revoke", { token, token_type_hint: REFRESH_HINT });
        }
      } catch (e) {
        failure = e;
      }
      await this.signedOut();
      // A 4xx means there was nothing left to revoke; anything else the caller should see.
      if (failure !== null && !(failure instanceof AuthError && failure.status >= 400 && failure.status < 500)) {
        throw failure;
      }
    });
  }

  // --- refresh, single-flight across tabs --------------------------------------

  /** The lifetime left below which a token is refreshed. */
  private due(h: Held): boolean {
    return this.now() >= h.expiresAt - Math.min(this.marginMs, h.lifetime / 4);
  }

  /** A token newer than stale: adopted from another tab, or refreshed here. */
  private refresh(stale: string | null): Promise<string | null> {
    this.inflight ??= this.locks.request(this.lockName, () => this.refreshLocked(stale))
      .finally(() => { this.inflight = null; });
    return this.inflight;
  }

  private async refreshLocked(stale: string | null): Promise<string | null> {
    // A token newer than stale and not due: another tab's, adopted while this one waited.
    const fresh = (): string | null => {
      const h = this.held;
      return h && h.accessToken !== stale && !this.due(h) ? h.accessToken : null;
    };
    let token = fresh();
    if (token) return token;
    const g = await this.store.read();
    token = fresh(); // a message may have come while the record was read
    if (token) return token;
    if (g?.signedOut && g.gen >= this.gen) {
      // The last word of any tab was a sign-out: there is no session (and no cookie) to refresh.
      this.gen = g.gen;
      this.drop();
      return null;
    }
    if (g && g.gen > this.gen) {
      // Another tab signed in or refreshed since this one last heard: its token is on the way.
      await this.awaitPeer(g.gen);
      token = fresh();
      if (token) return token;
    }
    if (this.noSessionToRestore(g)) {
      if (this.held || (g && !g.signedOut && g.gen > 0)) await this.signedOut();
      return null;
    }
    let body: RequestOf<"/v1/auth/refresh"> = {};
    if (this.mode === "body") {
      const token = await this.tokens.get();
      if (!token) return this.held ? this.signedOut().then(() => null) : null;
      body = { refresh_token: token };
    }
    let answer: TokenAnswer;
    try {
      answer = await this.post("/v1/auth/refresh", body);
    } catch (e) {
      // 401: the refresh token is dead (revoked, expired, reused); 400 in
      // cookie mode: there is no cookie. Either way nobody is signed in.
      if (e instanceof AuthError && (e.status === 401 || e.status === 400)) {
        if (this.held || (g && !g.signedOut && g.gen > 0)) await this.signedOut();
        return null;
      }
      throw e;
    }
    const event = this.held ? "TOKEN_REFRESHED" : "SIGNED_IN";
    await this.accept(answer, event);
    return this.held?.accessToken ?? null;
  }

  /**
   * Cookie mode: true when the presence cookie shows there is no refresh
   * cookie, so a refresh would only be refused. It is trusted once this page
   * has seen the gateway set it ("visible"); before that, only when no tab of
   * this origin was left signed in (a gateway or a page from before the
   * presence cookie). A page that cannot see it (a gateway on another host
   * without --presence-cookie-domain) learns so at its next sign-in and then
   * always asks, as without the cookie.
   */
  private noSessionToRestore(g: Generation | null): boolean {
    if (this.presenceOf() !== "absent") return false;
    const seen = this.presence.get();
    if (seen === "invisible") return false;
    return seen === "visible" || !(g && !g.signedOut && g.gen > 0);
  }

  private presenceOf(): "present" | "absent" | "unknown" {
    return presenceOf(this.presenceName);
  }

  /** After the gateway handed this tab a session: can the page see the presence cookie? */
  private learnPresence(): void {
    const now = this.presenceOf();
    if (now === "unknown") return;
    const seen = now === "present" ? "visible" : "invisible";
    if (seen === "invisible" && this.presence.get() !== "invisible") {
      console.warn(`authsvc: the gateway's ${this.presenceName} cookie is not visible to this page; ` +
        "every page load will ask the gateway for a session. Set the gateway's --presence-cookie-domain " +
        "to a domain this page is on, or presenceCookie: null to silence this.");
    }
    this.presence.set(seen);
  }

  /** Waits for the token of generation gen from the tab that made it. */
  private async awaitPeer(gen: number): Promise<Held | null> {
    if (this.gen >= gen) return this.held;
    if (!this.channel) return null;
    if (this.locks.held) {
      const others = (await this.locks.held()).filter((n) => n.startsWith(this.lockName.replace(/refresh$/, "tab:")) && n !== this.tabName);
      if (others.length === 0) return null; // every other tab is gone: nobody will answer
    }
    this.channel.post({ type: "ask", gen });
    await new Promise<void>((resolve) => {
      const done = () => { if (this.gen >= gen) finish(); };
      const timer = setTimeout(() => finish(), this.peerWait);
      const finish = () => { clearTimeout(timer); this.waiters.delete(done); resolve(); };
      this.waiters.add(done);
      done();
    });
    return this.gen >= gen ? this.held : null;
  }

  private async onMessage(m: Message): Promise<void> {
    if (m.type === "ask") {
      const h = this.held;
      if (h && h.gen >= m.gen) this.channel?.post(await this.tokenMessage(h));
      return;
    }
    if (m.gen <= this.gen) return;
    this.gen = m.gen;
    if (m.type === "signed-out") {
      if (this.mode === "body") await this.tokens.set(null);
      this.drop();
    } else {
      const wasIn = this.held !== null;
      this.held = { accessToken: m.accessToken, expiresAt: m.expiresAt, lifetime: m.lifetime,
        userId: m.userId, sessionId: m.sessionId, profile: m.profile ?? null, gen: m.gen };
      if (this.mode === "body" && m.refreshToken) await this.tokens.set(m.refreshToken);
      this.emit(wasIn ? "TOKEN_REFRESHED" : "SIGNED_IN");
    }
    for (const w of [...this.waiters]) w();
  }

  private async tokenMessage(h: Held): Promise<Message> {
    const m: Message = { type: "token", gen: h.gen, accessToken: h.accessToken, expiresAt: h.expiresAt,
      lifetime: h.lifetime, userId: h.userId, sessionId: h.sessionId, profile: h.profile };
    if (this.mode === "body") {
      const rt = await this.tokens.get();
      if (rt) m.refreshToken = rt;
    }
    return m;
  }

  /** Holding the lock: takes a token answer as the next generation and tells the other tabs. */
  private async accept(answer: TokenAnswer, event: AuthEvent): Promise<SessionInfo> {
    if (typeof answer.access_token !== "string" || typeof answer.expires_in !== "number") {
      throw new AuthError("BAD_RESPONSE", "The answer has no access token.");
    }
    const g = await this.store.read();
    const gen = Math.max(g?.gen ?? 0, this.gen) + 1;
    const lifetime = answer.expires_in * 1000;
    const sessionId = String(answer.session_id ?? "");
    const profile = (this.held?.sessionId === sessionId ? this.held.profile : null)
      ?? await this.userinfo(answer.access_token);
    const h: Held = { accessToken: answer.access_token, expiresAt: this.now() + lifetime, lifetime,
      userId: String(answer.user_id ?? ""), sessionId, profile, gen };
    if (this.mode === "body" && typeof answer.refresh_token === "string") await this.tokens.set(answer.refresh_token);
    this.held = h;
    this.gen = gen;
    if (this.mode === "cookie") this.learnPresence();
    await this.store.write({ gen, expiresAt: h.expiresAt, signedOut: false } satisfies Generation);
    this.channel?.post(await this.tokenMessage(h));
    this.emit(event);
    return this.session() as SessionInfo;
  }

  /** Holding the lock: ends the session here and in every tab. */
  private async signedOut(): Promise<void> {
    const g = await this.store.read();
    const gen = Math.max(g?.gen ?? 0, this.gen) + 1;
    this.gen = gen;
    if (this.mode === "body") await this.tokens.set(null);
    await this.store.write({ gen, expiresAt: 0, signedOut: true });
    this.channel?.post({ type: "signed-out", gen });
    this.drop();
  }

  private drop(): void {
    const wasIn = this.held !== null;
    this.held = null;
    if (wasIn) this.emit("SIGNED_OUT");
  }

  private emit(event: AuthEvent): void {
    const s = this.session();
    for (const l of [...this.listeners]) {
      if (this.untold.has(l)) continue; // INITIAL_SESSION will tell it the state
      try {
        l(event, s);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  // --- HTTP ---------------------------------------------------------------------

  private url(path: string): string {
    return this.base + path;
  }

  private credentials(): RequestCredentials {
    return this.mode === "cookie" ? "include" : "same-origin";
  }

  private async post<P extends PostPath>(path: P, body: RequestOf<P>): Promise<AnswerOf<P>> {
    let resp: Response;
    try {
      resp = await this.fetchImpl(this.url(path), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        credentials: this.credentials(),
      });
    } catch (e) {
      throw await diagnose(this.base, this.fetchImpl, e);
    }
    return this.answerOf<AnswerOf<P>>(resp);
  }

  /** The profile GET /v1/auth/userinfo answers for accessToken; null when it cannot. */
  private async userinfo(accessToken: string): Promise<UserProfile | null> {
    try {
      const resp = await this.fetchImpl(this.url("/v1/auth/userinfo"), {
        headers: { authorization: `Bearer ${accessToken}` }, credentials: "omit",
      });
      return resp.ok ? profileOf(await resp.json()) : null;
    } catch {
      return null; // the session stands without it; its next token asks again
    }
  }

  private async answerOf<A>(resp: Response): Promise<A> {
    if (!resp.ok) throw await errorFrom(resp);
    try {
      return (await resp.json()) as A;
    } catch (e) {
      throw new AuthError("BAD_RESPONSE", "The answer is not JSON.", { status: resp.status, cause: e });
    }
  }

  private send(input: RequestInfo | URL, init: RequestInit, token: string): Promise<Response> {
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set("authorization", `Bearer ${token}`);
    return this.fetchImpl(input, { ...init, headers });
  }
}

/** location.assign of the page, or undefined where there is no page (a worker, node). */
function pageNavigation(): ((url: string) => void) | undefined {
  const location = (globalThis as { location?: { assign?: (url: string) => void } }).location;
  return typeof location?.assign === "function" ? (url) => location.assign?.(url) : undefined;
}

function hasTokens(answer: TokenAnswer): boolean {
  return typeof answer.access_token === "string" && answer.access_token !== "";
}

/** A 401 that says the access token expired: ErrorInfo TOKEN_EXPIRED, or an RFC 6750 challenge saying so. */
async function isExpiredAnswer(resp: Response): Promise<boolean> {
  const challenge = resp.headers.get("www-authenticate") ?? "";
  if (/error="invalid_token"/.test(challenge) && /expired/i.test(challenge)) return true;
  try {
    return reasonOf(await resp.clone().json()) === "TOKEN_EXPIRED";
  } catch {
    return false;
  }
}

/** The OIDC claims of a userinfo answer, each kept only when present and of its type. */
function profileOf(claims: Record<string, unknown>): UserProfile {
  const p: UserProfile = {};
  if (typeof claims.email === "string") p.email = claims.email;
  if (typeof claims.email_verified === "boolean") p.emailVerified = claims.email_verified;
  if (typeof claims.phone_number === "string") p.phoneNumber = claims.phone_number;
  if (typeof claims.phone_number_verified === "boolean") p.phoneNumberVerified = claims.phone_number_verified;
  if (typeof claims.preferred_username === "string") p.preferredUsername = claims.preferred_username;
  return p;
}
