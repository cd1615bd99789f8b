// Drives Debian's Chromium (playwright-core) through the login page of
// examples/js-login-page, bundled with esbuild in an empty project, for
// examples/tests/test_js_login_page.py. Only what a user does: type, click, reload.
// Input: one JSON argument {chromium, pageUrl, gateway, email, password, wrongPassword}.
// Output: one JSON line of what the page showed at each step; the Python test asserts.
//
// 1. a signed-out load; 2. a wrong password; 3. the right one; 4. a reload keeps
// the session (the refresh cookie); 5. sign out; 6. a reload stays signed out.
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const out = { pageErrors: [], consoleErrors: [], pageFiles: [], elsewhere: [] };
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
  const calls = []; // the gateway calls since the last load, "METHOD /path"
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.origin === cfg.gateway) calls.push(`${r.method()} ${url.pathname}`);
    else if (url.origin === cfg.pageUrl) {
      if (!out.pageFiles.includes(url.pathname)) out.pageFiles.push(url.pathname);
    } else if (url.protocol !== "data:") out.elsewhere.push(r.url());
  });

  const status = () => page.textContent("#status");
  const settled = () => page.waitForFunction(
    () => document.getElementById("status").textContent !== "Loading…");
  /** What the page shows now, and the gateway calls since the last look. */
  const look = async () => {
    const seen = {
      status: await status(),
      form: await page.isVisible("#sign-in"),
      signOut: await page.isVisible("#sign-out"),
      error: await page.textContent("#error"),
      calls: [...calls],
    };
    calls.length = 0;
    return seen;
  };
  const load = async (how) => {
    calls.length = 0;
    await how();
    await settled();
    return look();
  };
  const signIn = async (password) => {
    await page.fill("input[name=email]", cfg.email);
    await page.fill("input[name=password]", password);
    await page.click("button[type=submit]");
  };

  // 1. Signed out: the form, and no call (the client sees no presence cookie).
  out.signedOutLoad = await load(() => page.goto(`${cfg.pageUrl}/index.html`));
  // 2. A wrong password: told so, still signed out.
  await signIn(cfg.wrongPassword);
  await page.waitForFunction(() => document.getElementById("error").textContent !== "");
  out.wrongPassword = await look();
  // 3. The right one: who is signed in, from the session's profile.
  await signIn(cfg.password);
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("Signed in"));
  out.signedIn = { ...await look(), passwordField: await page.inputValue("input[name=password]") };
  out.cookies = (await context.cookies(cfg.gateway)).map(({ name, httpOnly }) => ({ name, httpOnly }))
    .sort((a, b) => a.name.localeCompare(b.name));
  out.scriptSeesRefreshToken = await page.evaluate(() => document.cookie.includes("refresh"));
  // 4. A reload restores the session from the refresh cookie.
  out.reloaded = await load(() => page.reload());
  // 5. Sign out.
  await page.click("#sign-out");
  await page.waitForFunction(() => document.getElementById("status").textContent === "Signed out");
  out.signedOut = await look();
  out.cookiesAfterSignOut = (await context.cookies(cfg.gateway)).map((c) => c.name);
  // 6. A reload after signing out asks the gateway nothing.
  out.reloadedSignedOut = await load(() => page.reload());
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
