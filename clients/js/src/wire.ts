/**
 * The JSON the client sends to and reads from the gateway, by path, as the
 * generated wire types (gen/auth.ts, from the OpenAPI spec that
 * protoc-gen-openapiv2 writes from the proto) say. Nothing here is written by
 * hand but the lookup: a field renamed in the proto fails the build here.
 */
import type { components, paths } from "./gen/auth.js";

/** The gateway paths the client POSTs to. */
export type PostPath = { [P in keyof paths]: paths[P]["post"] extends undefined | never ? never : P }[keyof paths];

type PostOf<P extends PostPath> = NonNullable<paths[P]["post"]>;

/** The JSON body a POST to path P takes. */
export type RequestOf<P extends PostPath> =
  PostOf<P> extends { requestBody: { content: { "application/json": infer B } } } ? Sendable<B> : never;

/** The JSON body of a successful answer to a POST to path P. */
export type AnswerOf<P extends PostPath> =
  PostOf<P> extends { responses: { 200: { content: { "application/json": infer A } } } } ? A : never;

/** A JSON body as sent: JSON.stringify drops a property that is undefined, as if absent. */
type Sendable<T> = T extends readonly (infer E)[] ? Sendable<E>[]
  : T extends object ? { [K in keyof T]?: Sendable<T[K]> | undefined } : T;

/** The fields of a sign-in, refresh or sign-up answer that open a session. */
export type TokenAnswer = Partial<Pick<components["schemas"]["v1SignInResponse"],
  "access_token" | "expires_in" | "refresh_token" | "session_id" | "user_id">>;

/** The gateway paths the client GETs. */
export type GetPath = { [P in keyof paths]: paths[P]["get"] extends undefined | never ? never : P }[keyof paths];

/** The JSON body of a successful answer to a GET of path P. */
export type GetAnswerOf<P extends GetPath> =
  NonNullable<paths[P]["get"]> extends { responses: { 200: { content: { "application/json": infer A } } } } ? A : never;
