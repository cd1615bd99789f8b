// A login page: sign in with a password, show who is signed in, sign out.
// The session survives a reload: the gateway keeps the refresh token in an
// HttpOnly cookie, and the client restores the session from it on page load.
import { createAuthClient } from "@authsvc/client";

// GATEWAY_URL is replaced by the gateway's origin when build.mjs bundles the page.
const auth = createAuthClient({ baseUrl: GATEWAY_URL });

const status = document.getElementById("status");
const form = document.getElementById("sign-in");
const error = document.getElementById("error");
const signOut = document.getElementById("sign-out");

/** Who is signed in, from the session's profile (the user's identifiers). */
function who(session) {
  const { email, emailVerified, phoneNumber, preferredUsername } = session.profile ?? {};
  if (email) return emailVerified ? email : `${email} (not verified)`;
  return phoneNumber ?? preferredUsername ?? `user ${session.userId}`;
}

function show(session) {
  status.textContent = session ? `Signed in as ${who(session)}` : "Signed out";
  form.hidden = session !== null;
  signOut.hidden = session === null;
}

/** What to tell the user when signing in fails: by the error's reason, never its text. */
function explain(e) {
  switch (e.reason) {
    case "INVALID_CREDENTIALS": return "Wrong email or password.";
    case "RATE_LIMITED": return `Too many attempts: try again in ${e.retryAfter ?? 60} s.`;
    case "MFA_REQUIRED": return "This account signs in with a second factor, which this page does not ask for.";
    case "NETWORK_ERROR": return "The sign-in service could not be reached.";
    default: return `Could not sign in (${e.reason ?? e}).`;
  }
}

// INITIAL_SESSION first (the session restored on page load, or null), then every change.
auth.onAuthStateChange((_event, session) => show(session));

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const fields = new FormData(form);
  try {
    await auth.signIn({ email: String(fields.get("email")) }, String(fields.get("password")));
    form.reset();
  } catch (e) {
    error.textContent = explain(e);
  }
});

signOut.addEventListener("click", async () => {
  error.textContent = "";
  try {
    await auth.signOut();
  } catch (e) {
    error.textContent = `Could not sign out (${e.reason ?? e}).`;
  }
});
