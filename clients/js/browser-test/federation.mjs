// Drives Debian's Chromium (playwright-core) through sign-in with another identity
// provider: the demo page calls signInWithProvider, the gateway sends the browser to
// the provider, its login form is filled here, and the provider's redirect comes back
// through the gateway's callback to the demo page. For tests/system/test_browser_federation.py.
// Input: one JSON argument {chromium, demoUrl, gateway, oidc: {id, origin, username,
//   password}, github: {id, origin, login, password}, foreign, stolen (an attacker's
//   unfollowed callback URL)}.
// Output: one JSON line of observations; the Python test asserts.
//
// 1. a new user through the OpenID Connect provider; cookies; three tabs share it;
// 2. sign out; the same person again: the same user (returning);
// 3. a new user through the GitHub-shape (OAuth 2.0) provider, in another browser;
// 4. refusals: a callback whose state belongs to another browser's flow (login CSRF),
//    a callback without state, a spent callback replayed, a redirectTo on a foreign
//    origin (refused at start: the provider is never asked).
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const out = { pageErrors: [] };
const WAIT = 60_000;

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
});
const demo = `${cfg.demoUrl}/demo/index.html?gateway=${encodeURIComponent(cfg.gateway)}`;

async function context() {
  const c = await browser.newContext();
  c.setDefaultTimeout(WAIT);
  return c;
}

/** A demo page, its client ready and INITIAL_SESSION told. */
async function ready(page) {
  await page.waitForFunction(() => window.demo !== undefined);
  await page.evaluate(() => window.demo.ready);
  await page.waitForFunction(() => window.demo.events.some(([e]) => e === "INITIAL_SESSION"));
}

async function open(ctx) {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  await page.goto(demo);
  await ready(page);
  return page;
}

/** What the demo page shows of its session. */
async function shown(page) {
  await page.waitForFunction(() => document.querySelector("#state")?.textContent !== "starting…");
  return { state: await page.textContent("#state"), userId: await page.textContent("#user-id"),
    initial: await page.evaluate(() => window.demo.initial) };
}

/** Starts the provider sign-in from the page; resolves once the provider's page is there. */
async function start(page, id, providerOrigin, options = {}) {
  const arrived = page.waitForURL((url) => url.href.startsWith(providerOrigin));
  await page.evaluate(([provider, opts]) => { void window.demo.client.signInWithProvider(provider, opts); }, [id, options]);
  await arrived;
}

/** The zitadel example OP's login form. */
async function oidcLogin(page) {
  await page.waitForSelector("#username");
  await page.fill("#username", cfg.oidc.username);
  await page.fill("#password", cfg.oidc.password);
  await page.click("button[type=submit]");
}

/** The GitHub-shape provider's form. */
async function githubLogin(page) {
  await page.waitForSelector("#login");
  await page.fill("#login", cfg.github.login);
  await page.fill("#password", cfg.github.password);
  await page.click("#authorize");
}

/** Back on the demo page after the gateway's callback. */
async function back(page) {
  await page.waitForURL((url) => url.href.startsWith(cfg.demoUrl));
  await ready(page);
  await page.waitForFunction(() => document.querySelector("#state")?.textContent === "signed in");
  return shown(page);
}

const cookieShape = async (ctx) => (await ctx.cookies(cfg.gateway))
  .map(({ name, httpOnly, secure, sameSite, path }) => ({ name, httpOnly, secure, sameSite, path }))
  .sort((a, b) => a.name.localeCompare(b.name));

/** The JSON error a navigation ended on (the gateway's answer), with its status. */
async function errorPage(response) {
  let body = null;
  try {
    body = JSON.parse(await response.text());
  } catch {
    // not JSON
  }
  const info = body?.details?.find((d) => String(d["@type"]).endsWith("ErrorInfo"));
  const violations = body?.details?.find((d) => String(d["@type"]).endsWith("BadRequest"))?.field_violations ?? [];
  return { status: response.status(), reason: info?.reason ?? null, fields: violations.map((v) => v.field) };
}

try {
  // 1. A new user through the OpenID Connect provider.
  const laptop = await context();
  const page = await open(laptop);
  out.before = await shown(page);
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await start(page, cfg.oidc.id, cfg.oidc.origin);
  out.oidcStartWent = requests.filter((u) => u.startsWith(cfg.gateway)).map((u) => new URL(u).pathname);
  out.flowCookieDuringFlow = (await laptop.cookies(cfg.gateway)).filter((c) => c.name.includes("fed"))
    .map(({ name, httpOnly, sameSite }) => ({ name, httpOnly, sameSite }));
  await oidcLogin(page);
  out.oidcNew = await back(page);
  out.oidcReturnedTo = page.url();
  out.cookies = await cookieShape(laptop);
  out.profile = await page.evaluate(() => window.demo.client.session()?.profile ?? null);
  out.protected = await page.evaluate(() => window.demo.callProtected());

  // Three tabs: two more pages of the origin share the session.
  const tabs = [page, await open(laptop), await open(laptop)];
  out.tabs = [];
  for (const t of tabs) out.tabs.push(await shown(t));

  // 2. Sign out in one tab: all three; then the same person again.
  await page.evaluate(() => window.demo.client.signOut());
  for (const t of tabs) await t.waitForFunction(() => document.querySelector("#state")?.textContent === "signed out");
  out.afterSignOut = await Promise.all(tabs.map((t) => t.textContent("#state")));
  await start(page, cfg.oidc.id, cfg.oidc.origin);
  await oidcLogin(page);
  out.oidcReturning = await back(page);
  out.tabsAfterReturning = [];
  for (const t of tabs.slice(1)) {
    await t.waitForFunction(() => document.querySelector("#state")?.textContent === "signed in");
    out.tabsAfterReturning.push(await t.textContent("#user-id"));
  }

  // 3. The GitHub-shape provider, in another browser.
  const desktop = await context();
  const other = await open(desktop);
  await start(other, cfg.github.id, cfg.github.origin);
  await githubLogin(other);
  out.github = await back(other);

  // 4a. Login CSRF: the attacker's own callback (the state and code of a flow the
  // attacker started and signed in to, not followed: cfg.stolen) delivered to the
  // victim's browser, which has a flow of its own.
  const stolen = cfg.stolen;
  const victim = await context();
  const victimPage = await open(victim);
  await start(victimPage, cfg.oidc.id, cfg.oidc.origin); // the victim's own flow, unfinished
  out.csrf = await errorPage(await victimPage.goto(stolen));
  await victimPage.goto(demo);
  await ready(victimPage);
  out.victimAfterCsrf = await shown(victimPage);

  // 4b. No state at all, on a browser with a flow.
  await start(victimPage, cfg.oidc.id, cfg.oidc.origin);
  const noState = new URL(stolen);
  noState.searchParams.delete("state");
  out.missingState = await errorPage(await victimPage.goto(noState.href));

  // 4c. The laptop's last callback (spent: it signed the returning user in) replayed.
  const callbacks = requests.filter((u) => u.startsWith(`${cfg.gateway}/v1/auth/providers/`) && u.includes("/callback?"));
  out.replay = await errorPage(await page.goto(callbacks[callbacks.length - 1]));

  // 4d. redirectTo on a foreign origin: refused at start, the provider never asked.
  const seen = [];
  victimPage.on("request", (r) => seen.push(r.url()));
  await victimPage.goto(demo);
  await ready(victimPage);
  const refused = victimPage.waitForResponse((r) => r.url().includes("/start?"));
  await victimPage.evaluate((foreign) => { void window.demo.client.signInWithProvider("op", { redirectTo: foreign }); }, cfg.foreign);
  out.foreign = await errorPage(await refused);
  out.foreignReachedProvider = seen.some((u) => u.startsWith(cfg.oidc.origin));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
