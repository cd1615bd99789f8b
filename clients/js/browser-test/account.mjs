// Drives Debian's Chromium (playwright-core) through the account methods of
// the client on the demo page, for tests/system/test_browser_account.py.
// Input: one JSON argument {chromium, demoUrl, otherUrl, gateway, email, password}.
// Output: one JSON line of observations; the Python test asserts.
//
// 1. a signed-out page load asks nothing; sign in; the presence cookie is readable;
//    a reload restores the session with one refresh (INITIAL_SESSION);
// 2. fetch() to another origin is refused without a request;
// 3. enrol an authenticator app with a code computed here, list factors; removal
//    asks for step-up; sign in again with the code; regenerate codes; remove it;
// 4. a second browser ("another device") signs in; sign out everywhere from the
//    first; the second's token is refused; a reload of the first asks nothing;
// 5. a page on an unlisted origin gets ORIGIN_NOT_ALLOWED.
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const out = { pageErrors: [] };
const WAIT = 60_000;

function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const ch of text.replace(/=+$/, "")) bits += alphabet.indexOf(ch).toString(2).padStart(5, "0");
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(Number.parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** RFC 6238: SHA-1, 6 digits, 30 s steps. */
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32(secret)).update(counter).digest();
  const offset = mac[19] & 15;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}
const stepNow = () => Math.floor(Date.now() / 30_000);

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
});
try {
  const demo = (origin) => `${origin}/demo/index.html?gateway=${encodeURIComponent(cfg.gateway)}`;
  const requests = []; // [label, url] of every request a page makes
  const open = async (context, label, origin = cfg.demoUrl) => {
    const page = await context.newPage();
    page.on("pageerror", (e) => out.pageErrors.push(String(e)));
    page.on("request", (r) => requests.push([label, r.method(), r.url()]));
    await page.goto(demo(origin));
    await page.waitForFunction(() => window.demo !== undefined);
    await page.evaluate(() => window.demo.ready);
    return page;
  };
  const gatewayCalls = (label) => requests.filter(([l, , url]) => l === label && url.startsWith(cfg.gateway))
    .map(([, method, url]) => `${method} ${new URL(url).pathname}`);
  const reload = async (page, label) => {
    requests.length = 0;
    await page.reload();
    await page.waitForFunction(() => window.demo !== undefined);
    await page.evaluate(() => window.demo.ready);
    // INITIAL_SESSION is told once the restore settled; wait for it, then look.
    await page.waitForFunction(() => window.demo.events.some(([e]) => e === "INITIAL_SESSION"));
    return { calls: gatewayCalls(label), initial: await page.evaluate(() => window.demo.initial) };
  };

  const laptop = await browser.newContext();
  laptop.setDefaultTimeout(WAIT);
  const page = await open(laptop, "laptop");

  // 1. Signed out: the page load asked nothing, and said so once.
  await page.waitForFunction(() => window.demo.events.some(([e]) => e === "INITIAL_SESSION"));
  out.signedOutLoad = { calls: gatewayCalls("laptop"), initial: await page.evaluate(() => window.demo.initial) };
  out.signedIn = await page.evaluate(async ({ email, password }) => {
    const s = await window.demo.client.signIn({ email }, password);
    return { userId: s.userId, presence: document.cookie.split("; ").filter((c) => c.startsWith("authsvc_session")) };
  }, cfg);
  out.cookies = (await laptop.cookies(cfg.gateway)).map(({ name, httpOnly, secure, sameSite, path }) =>
    ({ name, httpOnly, secure, sameSite, path })).sort((a, b) => a.name.localeCompare(b.name));
  out.restoredLoad = await reload(page, "laptop");

  // 2. The access token goes to the gateway only.
  requests.length = 0;
  out.fetchElsewhere = await page.evaluate(async (other) => {
    try {
      await window.demo.client.fetch(`${other}/demo/index.html`);
      return "sent";
    } catch (e) {
      return e.reason ?? String(e);
    }
  }, cfg.otherUrl);
  out.requestsElsewhere = requests.filter(([, , url]) => url.startsWith(cfg.otherUrl)).length;

  // 3. An authenticator app.
  const enrolled = await page.evaluate(() => window.demo.client.enrollTotp());
  out.enrolledUri = enrolled.uri.startsWith("otpauth://totp/");
  const confirmStep = stepNow();
  out.recoveryCodes = (await page.evaluate((code) => window.demo.client.confirmTotp(code), totp(enrolled.secret, confirmStep))).length;
  out.factorsAfterConfirm = await page.evaluate(() => window.demo.client.listFactors());
  const attempt = (fn, arg) => page.evaluate(async ([body, a]) => {
    try {
      return { ok: await new Function("client", "arg", `return (${body})(client, arg)`)(window.demo.client, a) ?? null };
    } catch (e) {
      return { reason: e.reason ?? String(e), status: e.status ?? null };
    }
  }, [fn.toString(), arg]);
  out.removeWithoutStepUp = await attempt((client) => client.removeTotp());
  // Step-up: sign in again, the app's code as the second factor (a later step than the
  // confirming code's, which may not be used twice).
  const stepUpCode = totp(enrolled.secret, Math.max(stepNow(), confirmStep + 1));
  out.stepUp = await page.evaluate(async ({ email, password, code }) => {
    const { client } = window.demo;
    try {
      await client.signIn({ email }, password);
      return { reason: "no second factor asked" };
    } catch (e) {
      const s = await client.completeSignIn(e.metadata.mfa_token, { totp: code });
      return { reason: e.reason, factors: e.metadata.factors, userId: s.userId };
    }
  }, { ...cfg, code: stepUpCode });
  out.regenerated = await attempt(async (client) => (await client.regenerateRecoveryCodes()).length);
  out.removeAfterStepUp = await attempt((client) => client.removeTotp());
  out.factorsAfterRemove = await page.evaluate(() => window.demo.client.listFactors());

  // 4. Another device; sign out everywhere from this one.
  const phone = await browser.newContext();
  phone.setDefaultTimeout(WAIT);
  const other = await open(phone, "phone");
  out.phoneUserId = await other.evaluate(async ({ email, password }) =>
    (await window.demo.client.signIn({ email }, password)).userId, cfg);
  out.phoneToken = await other.evaluate(() => window.demo.client.getAccessToken());
  await page.evaluate(() => window.demo.client.signOutEverywhere());
  out.afterEverywhere = {
    state: await page.textContent("#state"),
    presence: await page.evaluate(() => document.cookie.includes("authsvc_session")),
    cookies: (await laptop.cookies(cfg.gateway)).map((c) => c.name),
  };
  out.signedOutReload = await reload(page, "laptop");

  // 5. A page whose origin the gateway does not list.
  const stranger = await open(laptop, "stranger", cfg.otherUrl);
  out.strangerSignIn = await stranger.evaluate(async ({ email, password }) => {
    const tries = [];
    for (let i = 0; i < 3; i++) {
      try {
        await window.demo.client.signIn({ email }, password);
        tries.push("signed in");
      } catch (e) {
        tries.push(`${e.reason}: ${e.message}`);
      }
    }
    return tries;
  }, cfg);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
