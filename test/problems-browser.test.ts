// Every named problem in a real browser: the six misconfigured wireguard-go clients of
// test/support/misconfigured.ts against one gateway, and Chromium (in the gateway's namespace, as
// in admin-browser.test.ts) opening the Overview — each problem kind listed with its title, likely
// cause, fix and a link to its connection — and each connection's page with its banner, the
// wrong-PSK client "awaiting confirmation" rather than a healthy-looking "connected". No CSP
// violation anywhere. GLASSGATE_SCREENSHOTS=DIR saves overview-problems.png and connection-problem.png.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";

import { type Browser, type Page } from "playwright-core";
import { CHROMIUM, launchChromiumIn, screenshot, watchPage } from "./support/browser.ts";
import type { ProblemView } from "../src/telemetry/problems.ts";
import { PROBLEM_KINDS, startMisconfigured, type Misconfigured } from "./support/misconfigured.ts";
import { skipReason, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]) ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (.ci/run installs Debian chromium)`);
if (skip) console.warn(`skipping problem browser tests: ${skip}`);
const USER = "ops";
const PASSWORD = "correct horse battery";

describe.skipIf(skip !== undefined)("named problems in the browser", () => {
  let m: Misconfigured;
  let browser: Browser;
  let page: Page;
  let problems: ProblemView[] = [];
  const base = "http://127.0.0.1:8080";
  const cspViolations: string[] = [];

  const shot = (name: string) => screenshot(page, name);

  beforeAll(async () => {
    m = await startMisconfigured({ GLASSGATE_ADMIN_USER: USER, GLASSGATE_ADMIN_PASSWORD: PASSWORD });
    browser = await launchChromiumIn(m.topo.gw.name, m.topo.dir);
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    watchPage(page, cspViolations);
    await page.goto(`${base}/login`);
    await page.fill('input[name="username"]', USER);
    await page.fill('input[name="password"]', PASSWORD);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${base}/`);
    // Every kind named (the PSK mismatch takes three unconfirmed handshakes, ~15 s).
    problems = await waitFor("every named problem", () => {
      const list = JSON.parse(m.topo.api("/api/problems").body).problems as ProblemView[];
      return PROBLEM_KINDS.every((k) => list.some((p) => p.kind === k)) && list;
    }, 45_000, 500).catch((err) => {
      throw new Error(`${(err as Error).message}: ${m.topo.api("/api/problems").body}`);
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await m?.topo.destroy();
  });

  test("the Overview lists every named problem with its likely cause, the fix and a link to its connection", async () => {
    await page.goto(`${base}/`);
    for (const kind of PROBLEM_KINDS) {
      const items = page.locator(`ul[data-testid="problems"] li[data-kind="${kind}"]`);
      expect(await items.count()).toBeGreaterThanOrEqual(1);
      const item = items.first();
      const p = problems.find((x) => x.kind === kind)!;
      const text = (await item.innerText()).replace(/\s+/g, " ");
      expect(text).toContain(p.title);
      expect(text).toContain(`Likely cause ${p.likely_cause}`.replace(/\s+/g, " "));
      expect(text).toContain(`Fix ${p.fix}`.replace(/\s+/g, " "));
      // Those that belong to a connection link to it; the rest name where they came from.
      const withCid = problems.filter((x) => x.kind === kind && x.cid !== null);
      for (const q of withCid) expect(await page.locator(`li[data-kind="${kind}"] a[href="/connections/${q.cid}"]`).count()).toBeGreaterThanOrEqual(1);
      if (p.cid === null) expect(p.source ?? p.public_key).toBeTruthy();
    }
    // The ones a client causes with a connection of its own.
    for (const kind of ["psk_mismatch", "allowed_ips", "never_connected", "endpoint_unreachable"]) {
      expect(problems.find((p) => p.kind === kind)!.cid).not.toBeNull();
    }
    // The packets dropped for coming from outside AllowedIPs are the outside client's, and say so.
    const outside = problems.find((p) => p.kind === "allowed_ips")!;
    expect(await page.locator(`tr[data-reason="allowed_ips"] a[href="/connections/${outside.cid}"]`).count()).toBe(1);
    expect(await page.getByTestId("problem-count").textContent()).toBe(String(await page.locator('ul[data-testid="problems"] > li').count()));
    await shot("overview-problems.png");
    expect(cspViolations).toEqual([]);
  }, 30_000);

  test("each connection with a problem shows its banner on the connection page", async () => {
    const withCid = problems.filter((p) => p.cid !== null);
    expect(withCid.length).toBeGreaterThanOrEqual(4);
    for (const p of withCid) {
      await page.goto(`${base}/connections/${p.cid}`);
      const banner = page.locator(`[data-problem="${p.kind}"]`);
      expect(await banner.count()).toBe(1);
      expect(await banner.getAttribute("role")).toBe("alert");
      const text = (await banner.innerText()).replace(/\s+/g, " ");
      expect(text).toContain(p.title);
      expect(text).toContain("Likely cause:");
      expect(text).toContain("Fix to try:");
      // The problem's appearance is in the connection's Timeline, at warn, by its title.
      const timeline = page.locator("h2:text-is('Timeline') + table");
      expect(await timeline.locator("tr.level-warn", { hasText: p.title }).count()).toBeGreaterThanOrEqual(1);
    }
    const outside = problems.find((p) => p.kind === "allowed_ips")!;
    await page.goto(`${base}/connections/${outside.cid}`);
    expect(await page.locator('[data-testid="drops"]').innerText()).toContain("allowed_ips");
    // The wrong-PSK client: never confirmed, so not "connected".
    const psk = problems.find((p) => p.kind === "psk_mismatch")!;
    await page.goto(`${base}/connections/${psk.cid}`);
    expect(await page.locator(".pill.awaiting_confirmation").textContent()).toBe("awaiting confirmation");
    // The banner's style comes from app.css (no inline styles under the CSP): it is visibly set off.
    const banner = page.locator('[data-problem="psk_mismatch"]');
    expect(await banner.evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { borderLeftStyle: string } }).getComputedStyle(el).borderLeftStyle)).toBe("solid");
    await shot("connection-problem.png");
    expect(cspViolations).toEqual([]);
  }, 60_000);

  test("when the session ends, the connection page's live poll takes the whole page to the login and back to it", async () => {
    const psk = problems.find((p) => p.kind === "psk_mismatch")!;
    await page.goto(`${base}/connections/${psk.cid}`);
    await page.context().clearCookies(); // as if the session expired
    // The next poll (every 2 s) answers 401 + HX-Redirect: the browser navigates, nothing is swapped in.
    await page.waitForURL(`${base}/login?next=${encodeURIComponent(`/connections/${psk.cid}`)}`, { timeout: 10_000 });
    expect(await page.locator("#connection-live").count()).toBe(0);
    await page.fill('input[name="username"]', USER);
    await page.fill('input[name="password"]', PASSWORD);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${base}/connections/${psk.cid}`);
    expect(await page.locator(`[data-problem="psk_mismatch"]`).count()).toBe(1);
    expect(cspViolations).toEqual([]);
  }, 30_000);
});
