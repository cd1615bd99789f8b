/**
 * Errors the client throws. Every refusal from authsvc carries the ErrorInfo
 * `reason` of its google.rpc.Status body (INVALID_CREDENTIALS, TOKEN_EXPIRED,
 * RATE_LIMITED, ...), so callers switch on `reason`, never on `message`.
 * Failures of the client itself use reasons of their own: NETWORK_ERROR,
 * NOT_SIGNED_IN, BAD_RESPONSE, API_ORIGIN_NOT_LISTED (fetch() to an origin
 * not in apiOrigins), the passkey ones, and COOKIE_MODE_REQUIRED /
 * NAVIGATION_UNAVAILABLE (signInWithProvider in body mode, or without a page). A call the browser refused
 * because the gateway does not list the page's origin is ORIGIN_NOT_ALLOWED
 * (status 0), told apart from NETWORK_ERROR by the gateway's origin check.
 *
 * `reason` is typed as the union of every reason there is: authsvc's
 * (ErrorReason, generated from the proto's authsvc.v1.ErrorReason enum), the
 * client's own (ClientReason), and HTTP_<status> for an answer that carries
 * no ErrorInfo, so a `switch` on it is checked by the compiler.
 */
import type { ErrorReason } from "./gen/error_reason.js";

export type { ErrorReason };

/** Reasons of the client's own failures, never sent by authsvc. */
export type ClientReason = "NETWORK_ERROR" | "NOT_SIGNED_IN" | "BAD_RESPONSE" | "PASSKEYS_UNSUPPORTED" | "PASSKEY_CANCELLED"
  | "API_ORIGIN_NOT_LISTED" | "COOKIE_MODE_REQUIRED" | "NAVIGATION_UNAVAILABLE";

/** The reason of an answer that carries no ErrorInfo (e.g. "HTTP_502" from a proxy). */
export type HttpReason = `HTTP_${number}`;

/** Every reason an AuthError can have. */
export type Reason = ErrorReason | ClientReason | HttpReason;

/** One google.rpc.BadRequest field violation. */
export interface FieldViolation {
  field: string;
  description: string;
}

export class AuthError extends Error {
  override readonly name = "AuthError";
  /** HTTP status of the answer (0 when there was none). */
  readonly status: number;
  /** The ErrorInfo reason, or one of the client's own reasons. */
  readonly reason: Reason;
  /** gRPC status code of the body, when the answer had one. */
  readonly code: number | undefined;
  /** Seconds to wait before trying again (Retry-After), when given. */
  readonly retryAfter: number | undefined;
  /** The fields an INVALID_ARGUMENT answer names. */
  readonly fields: FieldViolation[];
  /** The ErrorInfo metadata: for MFA_REQUIRED, `mfa_token` (for completeSignIn) and
   * `factors` (space-separated: totp, passkey, recovery_code). */
  readonly metadata: Record<string, string>;

  constructor(reason: Reason, message: string, init: {
    status?: number; code?: number | undefined; retryAfter?: number | undefined; fields?: FieldViolation[];
    metadata?: Record<string, string>; cause?: unknown;
  } = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.reason = reason;
    this.status = init.status ?? 0;
    this.code = init.code;
    this.retryAfter = init.retryAfter;
    this.fields = init.fields ?? [];
    this.metadata = init.metadata ?? {};
  }
}

interface StatusBody {
  code?: number;
  message?: string;
  details?: Array<{ "@type"?: string; reason?: string; metadata?: Record<string, string>;
    fieldViolations?: FieldViolation[]; field_violations?: FieldViolation[] }>;
}

/** The ErrorInfo reason of a google.rpc.Status body, if it has one. A reason
 * added to authsvc after this client was built still arrives as its string. */
export function reasonOf(body: unknown): ErrorReason | undefined {
  const details = (body as StatusBody | null)?.details;
  if (!Array.isArray(details)) return undefined;
  for (const d of details) {
    if (d?.["@type"]?.endsWith("google.rpc.ErrorInfo") && typeof d.reason === "string") return d.reason as ErrorReason;
  }
  return undefined;
}

/** Builds the AuthError for a non-2xx answer from the gateway. */
export async function errorFrom(resp: Response): Promise<AuthError> {
  let body: StatusBody | null = null;
  try {
    body = (await resp.json()) as StatusBody;
  } catch {
    body = null;
  }
  const fields: FieldViolation[] = [];
  let metadata: Record<string, string> = {};
  for (const d of body?.details ?? []) {
    if (d?.["@type"]?.endsWith("google.rpc.BadRequest")) {
      fields.push(...(d.field_violations ?? d.fieldViolations ?? []));
    }
    if (d?.["@type"]?.endsWith("google.rpc.ErrorInfo") && d.metadata && typeof d.metadata === "object") {
      metadata = { ...d.metadata };
    }
  }
  const retry = Number.parseInt(resp.headers.get("retry-after") ?? "", 10);
  return new AuthError(reasonOf(body) ?? `HTTP_${resp.status}`,
    typeof body?.message === "string" ? body.message : `HTTP ${resp.status}`,
    { status: resp.status, code: body?.code, retryAfter: Number.isNaN(retry) ? undefined : retry, fields, metadata });
}
