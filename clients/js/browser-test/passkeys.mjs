// Drives Debian's Chromium (playwright-core) through the demo page with a CDP
// WebAuthn virtual authenticator, for tests/system/test_browser_passkeys.py.
// Input: one JSON argument {chromium, demoUrl, gateway, email, password}.
// Output: one JSON line of observations; the Python test asserts.
//
// 1. sign in with the password, add a passkey, sign out;
// 2. sign in with the passkey alone; then with the password, which asks for the
//    passkey as the second factor;
// 3. sign out, copy the credential (its private key) into a second
//    authenticator whose sign counter is behind, and sign in with that clone.
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const out = { pageErrors: [] };
const WAIT = 60_000;

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
});
try {
  const context = await browser.newContext();
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const authenticator = {
    protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
    isUserVerified: true, automaticPresenceSimulation: true,
  };
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", { options: authenticator });

  await page.goto(`${cfg.demoUrl}/demo/index.html?gateway=${encodeURIComponent(cfg.gateway)}`);
  await page.waitForFunction(() => window.demo !== undefined);
  await page.evaluate(() => window.demo.ready);
  const state = () => page.textContent("#state");
  const passkeyLine = async (before) => {
    await page.waitForFunction((old) => {
      const text = document.querySelector("#passkey").textContent;
      return text !== "" && text !== old;
    }, before);
    return page.textContent("#passkey");
  };
  const signOut = async () => {
    await page.click("#sign-out");
    await page.waitForFunction(() => document.querySelector("#state").textContent === "signed out");
  };

  // 1. Password, then a passkey.
  await page.fill("#email", cfg.email);
  await page.fill("#password", cfg.password);
  await page.click("#sign-in");
  await page.waitForFunction(() => document.querySelector("#user-id").textContent !== "");
  out.passwordUserId = await page.textContent("#user-id");
  await page.click("#register-passkey");
  out.registered = await passkeyLine("");
  const [credential] = (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
  out.storedCredentials = 1;
  out.credentialResident = credential.isResidentCredential;
  await signOut();
  out.stateAfterSignOut = await state();

  // 2. The passkey alone.
  await page.click("#passkey-sign-in");
  out.passkeySignIn = await passkeyLine(out.registered);
  await page.waitForFunction(() => document.querySelector("#user-id").textContent !== "");
  out.passkeyUserId = await page.textContent("#user-id");
  out.stateAfterPasskey = await state();
  await signOut();

  // 2b. The password again: now it asks for the second factor (MFA_REQUIRED), which
  // the passkey gives (client.completeSignIn).
  out.secondFactor = await page.evaluate(async ({ email, password }) => {
    const { client } = window.demo;
    try {
      await client.signIn({ email }, password);
      return { reason: "signed in without a second factor" };
    } catch (e) {
      const session = await client.completeSignIn(e.metadata.mfa_token, { passkey: true });
      return { reason: e.reason, factors: e.metadata.factors, userId: session.userId };
    }
  }, { email: cfg.email, password: cfg.password });
  out.signCountAfterPasskey = (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials[0].signCount;
  await signOut();

  // 3. A clone whose counter went backwards: the same key in another authenticator.
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });
  const { authenticatorId: cloneId } = await cdp.send("WebAuthn.addVirtualAuthenticator", { options: authenticator });
  await cdp.send("WebAuthn.addCredential", {
    authenticatorId: cloneId,
    credential: { ...credential, signCount: 0 },
  });
  await page.click("#passkey-sign-in");
  out.cloneSignIn = await passkeyLine(out.passkeySignIn);
  out.stateAfterClone = await state();
  out.cloneSignCount = (await cdp.send("WebAuthn.getCredentials", { authenticatorId: cloneId })).credentials[0].signCount;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
