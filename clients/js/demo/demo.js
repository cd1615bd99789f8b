// The demo page: one AuthClient, its state on screen, and window.demo for the
// browser test (tests/system/test_browser.py drives it through playwright-core).
import { createAuthClient } from "../dist/index.js";

const params = new URLSearchParams(location.search);
const gateway = params.get("gateway") ?? "http://127.0.0.1:8080";
const client = createAuthClient({ baseUrl: gateway, mode: params.get("mode") ?? "cookie" });
const $ = (id) => document.getElementById(id);
const events = []; // [event, time in ms since the epoch]
let initial; // what INITIAL_SESSION said: a user id or null

function render() {
  const s = client.session();
  $("gateway").textContent = gateway;
  $("state").textContent = s ? "signed in" : "signed out";
  $("state").className = `state ${s ? "signed-in" : "signed-out"}`;
  $("user-id").textContent = s?.userId ?? "";
  $("session-id").textContent = s?.sessionId ?? "";
  $("expires").textContent = s ? new Date(s.expiresAt).toISOString() : "";
}

function log(line) {
  $("log").textContent = `${new Date().toISOString().slice(11, 23)} ${line}\n` + $("log").textContent;
}

client.onAuthStateChange((event, session) => {
  events.push([event, Date.now()]);
  if (event === "INITIAL_SESSION") initial = session?.userId ?? null;
  log(`${event}${session ? ` user ${session.userId}` : ""}`);
  render();
});

/** Calls POST /v1/auth/validate (a protected endpoint) through client.fetch. */
async function callProtected() {
  try {
    const resp = await client.fetch(`${gateway}/v1/auth/validate`, {
      method: "POST", headers: { "content-type": "application/json" }, body: "{}",
    });
    const body = await resp.json();
    const result = { status: resp.status, userId: body.user_id ?? null };
    $("protected").textContent = `${resp.status} ${body.user_id ?? body.message}`;
    return result;
  } catch (e) {
    $("protected").textContent = `${e.reason ?? e.name}`;
    return { status: 0, reason: e.reason ?? String(e) };
  }
}

$("sign-in-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("error").textContent = "";
  try {
    await client.signIn({ email: $("email").value }, $("password").value);
    $("password").value = "";
  } catch (e) {
    $("error").textContent = e.reason ?? String(e);
  }
});
$("call").addEventListener("click", () => { void callProtected(); });
$("sign-out").addEventListener("click", () => { events.push(["SIGN_OUT_CLICKED", Date.now()]); void client.signOut().catch((e) => log(`sign-out: ${e.reason}`)); });

// Passkeys: add one while signed in; sign in with it alone later.
$("register-passkey").addEventListener("click", async () => {
  try {
    const added = await client.registerPasskey("demo");
    $("passkey").textContent = `added ${added.credentialId} (${added.recoveryCodes.length} recovery codes)`;
  } catch (e) {
    $("passkey").textContent = `${e.reason ?? e.name}`;
  }
});
$("passkey-sign-in").addEventListener("click", async () => {
  try {
    await client.signInWithPasskey();
    $("passkey").textContent = "signed in with a passkey";
  } catch (e) {
    $("passkey").textContent = `${e.reason ?? e.name}`;
  }
});

render();
// A page that opens while another tab is signed in takes its token; a lone
// page with a refresh cookie refreshes once; one without asks nothing.
const ready = client.initialSession().finally(render);
window.demo = { client, events, callProtected, ready, gateway, get initial() { return initial; } };
