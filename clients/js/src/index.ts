export { createAuthClient } from "./client.js";
export type {
  AuthClient, AuthClientOptions, DeviceTokenStorage, AuthEvent, AuthListener, Factors, Identifier, PasskeyInfo,
  PasskeyRegistration, ProviderSignInOptions, SessionInfo, SignUpResult, TokenStorage, TotpEnrollment, UserProfile,
} from "./client.js";
export { AuthError } from "./errors.js";
export type { ClientReason, ErrorReason, FieldViolation, HttpReason, Reason } from "./errors.js";
export type { Channel, Generation, GenerationStore, Locks, Message } from "./coordination.js";
export { localLocks, memoryStore } from "./coordination.js";
