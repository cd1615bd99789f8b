// Drives Debian's Chromium (playwright-core, executablePath: no browser
// download) through the demo page for tests/system/test_browser.py.
// Input: one JSON argument {chromium, demoUrl, otherUrl, gateway, email,
// password, rounds, screenshots}. Output: one JSON line of observations on
// stdout; the Python test makes the assertions (it also reads the audit
// trail and calls the gateway itself).
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const out = {};
const WAIT = 60_000; // generous: the machine may be loaded

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  // Chromium's sandbox needs an unprivileged user; CI runs as root.
  args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
});
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
  context.setDefaultTimeout(WAIT);
  const demo = `${cfg.demoUrl}/demo/index.html?gateway=${encodeURIComponent(cfg.gateway)}`;
  const errors = [];
  const network = []; // [ms, tab, method path, status] of calls to the gateway
  const t0 = Date.now();
  let tabs = 0;
  const open = async () => {
    const page = await context.newPage();
    const tab = tabs++;
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("response", (r) => {
      if (r.url().startsWith(cfg.gateway)) {
        network.push([Date.now() - t0, tab, `${r.request().method()} ${new URL(r.url()).pathname}`, r.status()]);
      }
    });
    await page.goto(demo);
    await page.waitForFunction(() => window.demo !== undefined);
    await page.evaluate(() => window.demo.ready);
    return page;
  };

  // 1. Sign in through the page (cookie mode); the page shows the user id.
  const first = await open();
  await first.fill("#email", cfg.email);
  await first.fill("#password", cfg.password);
  await first.click("#sign-in");
  await first.waitForFunction(() => document.querySelector("#user-id").textContent !== "");
  out.shownUserId = await first.textContent("#user-id");
  out.shownState = await first.textContent("#state");
  const cookies = await context.cookies(cfg.gateway);
  out.cookies = cookies.map(({ name, httpOnly, secure, sameSite, path }) => ({ name, httpOnly, secure, sameSite, path }));
  const refreshCookie = cookies.find((c) => c.name.includes("authsvc_refresh"));
  // 4a. document.cookie cannot read it (the demo runs on the gateway's host, so
  // without HttpOnly it would: cookies are not separated by port).
  const documentCookie = await first.evaluate(() => document.cookie);
  out.documentCookieHasRefresh = refreshCookie ? documentCookie.includes(refreshCookie.value) ||
    documentCookie.includes(refreshCookie.name) : null;
  // Nor does the page keep a token in web storage (only device tokens, which are not credentials).
  out.storage = await first.evaluate((secret) => {
    const entries = [localStorage, sessionStorage].flatMap((st) => Object.keys(st).map((k) => [k, st.getItem(k)]));
    return {
      keys: entries.map(([k]) => k),
      holdsRefreshToken: entries.some(([, v]) => secret !== null && v.includes(secret)),
      holdsJwt: entries.some(([, v]) => /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/.test(v)),
    };
  }, refreshCookie?.value ?? null);
  if (cfg.screenshots) await first.screenshot({ path: `${cfg.screenshots}/signed-in.png` });

  // 2. Three tabs; the two new ones take the token from the first.
  const pages = [first, await open(), await open()];
  out.tabUsers = await Promise.all(pages.map((p) => p.evaluate(() => window.demo.client.session()?.userId ?? null)));
  out.tabProfiles = await Promise.all(pages.map((p) => p.evaluate(() => window.demo.client.session()?.profile ?? null)));

  const refreshesSeen = () => Promise.all(pages.map((p) => p.evaluate(
    () => window.demo.events.filter(([e]) => e === "TOKEN_REFRESHED").length)));
  out.rounds = [];
  out.refreshesPerRound = [];
  for (let round = 0; round < cfg.rounds; round++) {
    const before = await refreshesSeen();
    // Let the access token expire (each tab knows when it does).
    await first.waitForFunction(() => {
      const s = window.demo.client.session();
      return s !== null && Date.now() > s.expiresAt + 50;
    }, null, { polling: 50 });
    // All three call the protected endpoint at the same moment.
    const results = await Promise.all(pages.map((p) => p.evaluate(() => window.demo.callProtected())));
    out.rounds.push(results);
    // Every tab sees each new token once, whether it refreshed or was handed it.
    const after = await refreshesSeen();
    out.refreshesPerRound.push(after.map((n, i) => n - before[i]));
  }
  if (cfg.screenshots) {
    await pages[1].bringToFront();
    await pages[1].screenshot({ path: `${cfg.screenshots}/three-tabs-after-expiries.png` });
  }
  out.eventLog = await Promise.all(pages.map((p) => p.evaluate(() => window.demo.events)));
  out.signOutsDuringRounds = await Promise.all(pages.map((p) => p.evaluate(
    () => window.demo.events.filter(([e]) => e === "SIGNED_OUT").length)));
  out.tokensBeforeSignOut = await Promise.all(pages.map((p) => p.evaluate(() => window.demo.client.getAccessToken())));
  // Refreshes outside the rounds (the token may have come due again just now).
  out.refreshesSeen = await refreshesSeen();

  // 3. Sign out in one tab; the others show it, without asking the gateway.
  const requestsAfter = [];
  for (const p of pages.slice(1)) p.on("request", (r) => requestsAfter.push(r.url()));
  await first.bringToFront(); // a background tab's clicks wait for its throttled frames
  await first.click("#sign-out");
  await Promise.all(pages.map((p) => p.waitForFunction(() => document.querySelector("#state").textContent === "signed out")));
  // From the click in the first tab to each other tab's SIGNED_OUT (one machine, one clock).
  const clicked = await first.evaluate(() => window.demo.events.find(([e]) => e === "SIGN_OUT_CLICKED")[1]);
  out.signOutLatencyMs = await Promise.all(pages.slice(1).map((p) => p.evaluate((t) => {
    const ev = window.demo.events.find(([e]) => e === "SIGNED_OUT");
    return ev ? ev[1] - t : null;
  }, clicked)));
  out.otherTabsRequestsDuringSignOut = requestsAfter;
  out.statesAfterSignOut = await Promise.all(pages.map((p) => p.textContent("#state")));
  out.cookiesAfterSignOut = (await context.cookies(cfg.gateway)).map((c) => c.name);
  out.tokenAfterSignOut = await pages[1].evaluate(() => window.demo.client.getAccessToken());
  if (cfg.screenshots) await pages[1].screenshot({ path: `${cfg.screenshots}/signed-out.png` });

  // 4b. A page on an origin that is not listed gets no CORS access.
  const stranger = await context.newPage();
  await stranger.goto(`${cfg.otherUrl}/demo/index.html?gateway=${encodeURIComponent(cfg.gateway)}`);
  await stranger.waitForFunction(() => window.demo !== undefined);
  out.strangerOrigin = await stranger.evaluate(() => location.origin);
  out.stranger = await stranger.evaluate(async ({ gateway, email, password }) => {
    const attempt = async (path, init) => {
      try {
        const r = await fetch(gateway + path, init);
        return `status ${r.status}`;
      } catch (e) {
        return `${e.name}: ${e.message}`;
      }
    };
    return {
      jwks: await attempt("/v1/auth/jwks", {}),
      signIn: await attempt("/v1/auth/signin", { method: "POST", credentials: "include",
        headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password }) }),
      refresh: await attempt("/v1/auth/refresh", { method: "POST", credentials: "include",
        headers: { "content-type": "application/json" }, body: "{}" }),
    };
  }, { gateway: cfg.gateway, email: cfg.email, password: cfg.password });
  // The listed origin, for contrast, reads the same JWKS.
  out.listedJwks = await first.evaluate(async (gateway) => (await fetch(`${gateway}/v1/auth/jwks`)).status, cfg.gateway);
  out.pageErrors = errors;
  out.network = network;
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
