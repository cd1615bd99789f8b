/**
 * What the client reads of the page it runs in, kept apart from the token
 * logic: the gateway's presence cookie, the origins auth.fetch may send the
 * access token to, and the gateway's origin check that tells a refused
 * origin from a gateway that is down.
 */
import { AuthError } from "./errors.js";

/** The cookie the gateway sets, script-readable and secret-free, beside its HttpOnly refresh cookie. */
export const PRESENCE_COOKIE = "authsvc_session";

/**
 * What document.cookie says of the presence cookie: "present", "absent", or
 * "unknown" where there is no document (a worker, node) or no name to look for.
 */
export function presenceOf(name: string | null): "present" | "absent" | "unknown" {
  const doc = (globalThis as { document?: { cookie?: unknown } }).document;
  if (name === null || typeof doc?.cookie !== "string") return "unknown";
  return doc.cookie.split(";").some((c) => c.trim().split("=")[0] === name) ? "present" : "absent";
}

/** Where the client remembers, per gateway, whether this page can see the presence cookie. */
export interface PresenceMemory {
  get(): "visible" | "invisible" | null;
  set(v: "visible" | "invisible"): void;
}

export function presenceMemory(key: string): PresenceMemory {
  const ls = (globalThis as { localStorage?: Storage }).localStorage;
  let held: "visible" | "invisible" | null = null;
  return {
    get: () => {
      const v = ls ? ls.getItem(key) : held;
      return v === "visible" || v === "invisible" ? v : null;
    },
    set: (v) => {
      held = v;
      try {
        ls?.setItem(key, v);
      } catch {
        // storage full or refused: the memory of this page will do
      }
    },
  };
}

/** The origin of a URL as the page resolves it (relative to its location), or null. */
export function originOf(input: RequestInfo | URL): string | null {
  const raw = input instanceof URL ? input.href : typeof input === "string" ? input : input.url;
  const here = (globalThis as { location?: { href?: string } }).location?.href;
  try {
    return new URL(raw, here).origin;
  } catch {
    return null;
  }
}

/** The origins auth.fetch sends the access token to: the option's, else the gateway's own. */
export function apiOriginList(option: string[] | undefined, gateway: string): Set<string> {
  const list = option ?? [gateway === "" ? (originOf("/") ?? "") : (originOf(gateway) ?? gateway)];
  return new Set(list.map((o) => originOf(o) ?? o));
}

/**
 * Called after fetch() to the gateway rejected (a TypeError: the browser
 * shows a refused CORS call and an unreachable host alike). Asks the
 * gateway's origin check, which any origin may read; says
 * ORIGIN_NOT_ALLOWED when the gateway answers that this page's origin is
 * not listed, and NETWORK_ERROR otherwise.
 */
export async function diagnose(base: string, fetchImpl: typeof globalThis.fetch, cause: unknown): Promise<AuthError> {
  const unreachable = new AuthError("NETWORK_ERROR", "The gateway could not be reached.", { cause });
  if (base === "") return unreachable; // same origin: CORS never refuses
  let answer: { origin?: unknown; allowed?: unknown };
  try {
    const resp = await fetchImpl(`${base}/v1/auth/origin-check`, { credentials: "omit", cache: "no-store" });
    if (!resp.ok) return unreachable;
    answer = (await resp.json()) as typeof answer;
  } catch {
    return unreachable;
  }
  if (answer.allowed === false) {
    const origin = typeof answer.origin === "string" && answer.origin !== "" ? answer.origin : "this page's origin";
    return new AuthError("ORIGIN_NOT_ALLOWED",
      `The gateway does not allow pages of ${origin}: list it in the gateway's --cors-origins.`, { status: 0, cause });
  }
  return new AuthError("NETWORK_ERROR",
    "The gateway answered its origin check but not this call (a proxy in front of it may drop its CORS headers, or it restarted).",
    { cause });
}
