// The Overview and a connection's page in a real browser (Debian chromium via playwright-core)
// against a real `glassgate up` with a connected wireguard-go client: the gateway's facts, live
// charts with axes, the Problems empty state, the browser-local time beside UTC, and no CSP
// violation anywhere. GLASSGATE_SCREENSHOTS=DIR saves overview.png, connection.png, audit.png.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";

import { type Browser, type Page } from "playwright-core";
import { CHROMIUM, launchChromiumIn, screenshot, watchPage } from "./support/browser.ts";
import { encodeKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { Topology } from "./support/topology.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]) ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (.ci/run installs Debian chromium)`);
if (skip) console.warn(`skipping overview browser tests: ${skip}`);

const USER = "ops";
const PASSWORD = "overview-browser-pass";
/** A zone far from UTC, so the local time cannot be mistaken for the UTC text. */
const ZONE = "America/New_York";

describe.skipIf(skip !== undefined)("Overview in a browser", () => {
  let topo: Topology;
  let browser: Browser;
  let page: Page;
  const base = "http://127.0.0.1:8080";
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    await topo.configureClient(topo.clients[0]!);
    await topo.startGateway({ GLASSGATE_ADMIN_USER: USER, GLASSGATE_ADMIN_PASSWORD: PASSWORD, GLASSGATE_TRAFFIC_SAMPLE_SECONDS: "2" }, 1);
    browser = await launchChromiumIn(topo.gw.name, topo.dir);
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, timezoneId: ZONE, locale: "en-US" });
    page = await ctx.newPage();
    watchPage(page, cspViolations, pageErrors);
    await page.goto(`${base}/login`);
    await page.fill('input[name="username"]', USER);
    await page.fill('input[name="password"]', PASSWORD);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${base}/`);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await topo?.destroy();
  });

  const shot = (name: string) => screenshot(page, name);

  test("with a client connected, Overview shows the gateway's facts, charts with axes and no problems", async () => {
    const c = topo.clients[0]!;
    // Traffic over several rate samples (every 5 s): 40 pings of 1000 B, 0.25 s apart.
    expect(sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "40", "-i", "0.25", "-s", "1000", "-W", "2", topo.lanIp], { allowFail: true })).toContain("40 received");
    expect(topo.request("POST", "/api/peers", { name: "contractor-laptop", expiresAt: new Date(Date.now() + 3 * 86400_000).toISOString() }).status).toBe(201);

    await page.goto(`${base}/`);
    const fact = (k: string) => page.locator(`[data-fact="${k}"]`).textContent();
    expect(await fact("public_key")).toBe(encodeKey(publicKeyOf(topo.gwKey)));
    expect(await fact("udp_port")).toBe("52625");
    expect(await fact("aead")).toMatch(/^(libsodium|noble)/);
    expect(await fact("version")).toMatch(/^\d+\.\d+\.\d+/);
    expect(await fact("udp_buffers")).toMatch(/receive [\d.]+ (KiB|MiB), send [\d.]+ (KiB|MiB)/);
    // The receive queue is measured (kernel timestamps) and managed; the pings are over, so it is idle.
    expect(await fact("receive_queue_managed")).toStartWith("CoDel");
    expect(await fact("receive_queue_delay")).toMatch(/^(idle|[\d.]+ ms \(oldest of the last batch\))$/);
    expect(await page.getByTestId("connected-count").textContent()).toBe("1");

    // Ten seconds of rates make a line; the fragment refresh brings it without a reload.
    const chart = page.locator('svg[aria-label="Throughput (gateway-wide, WireGuard transport bytes)"]');
    await chart.waitFor({ timeout: 20_000 });
    const yLabels = await chart.locator('g[data-axis="y"] text').allTextContents();
    expect(yLabels[0]).toBe("0 bit/s");
    expect(yLabels.at(-1)).toMatch(/^[\d.]+ [kM]?bit\/s$/);
    expect(await chart.locator('g[data-axis="x"] text').count()).toBeGreaterThan(1);
    expect(await chart.locator('polyline.s-rx').count()).toBe(1);
    // A few more samples (one per 5 s) so the line shows the traffic rising and falling.
    await waitFor("four throughput samples", async () => ((await chart.locator("polyline.s-rx").getAttribute("points")) ?? "").split(" ").length >= 4, 25_000, 500);
    await page.locator('svg[aria-label="Handshakes"]').waitFor();

    expect(await page.getByTestId("problems-empty").textContent()).toBe("No problems detected.");
    expect(await page.locator('[data-testid="top-talkers"] a.cid').count()).toBe(1);
    expect(await page.locator('[data-testid="expiring"]').textContent()).toContain("contractor-laptop");
    await shot("overview.png");
  }, 90_000);

  test("every UTC time gets the browser's local time beside it, also after a live refresh", async () => {
    await page.goto(`${base}/`);
    const t = page.locator("time[datetime]").first();
    await t.locator(".local-time").waitFor();
    const iso = (await t.getAttribute("datetime"))!;
    const local = new Intl.DateTimeFormat("en-US", { timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short" }).format(new Date(iso));
    expect(await t.locator(".local-time").textContent()).toBe(` (${local})`);
    expect(await t.textContent()).toContain("UTC");
    // The fragment is swapped every 5 s: the new <time> elements get theirs too.
    await page.waitForResponse((r) => r.url().endsWith("/overview/live"), { timeout: 10_000 });
    await page.waitForFunction(() => {
      const all = (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document;
      return all.querySelectorAll("time[datetime]").length > 0 && all.querySelectorAll("time[datetime]:not([data-local])").length === 0;
    }, undefined, { timeout: 5_000 });
  }, 30_000);

  test("the connection page refreshes live and charts the stored traffic with axes", async () => {
    const c = topo.clients[0]!;
    const cid = topo.connections().find((x) => x.public_key === c.publicKey)!.cid;
    await page.goto(`${base}/connections/${cid}`);
    const before = await page.locator("#connection-live").textContent();
    expect(sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "10", "-i", "0.2", "-s", "1200", "-W", "2", topo.lanIp], { allowFail: true })).toContain("10 received");
    // No reload: the fragment brings the new counters.
    await waitFor("the connection page to show the new traffic", async () => (await page.locator("#connection-live").textContent()) !== before, 10_000, 250);
    const chart = page.locator('svg[aria-label^="Traffic, last 24 h"]');
    await chart.waitFor({ timeout: 15_000 });
    expect((await chart.locator('g[data-axis="y"] text').allTextContents())[0]).toBe("0 bit/s");
    expect(await chart.locator('g[data-axis="x"] text').count()).toBeGreaterThan(1);
    await shot("connection.png");
  }, 45_000);

  test("the audit page fits the viewport and links its subjects; nothing broke the CSP", async () => {
    await page.goto(`${base}/audit`);
    const width = await page.evaluate(() => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(1400);
    expect(await page.locator('tr[data-action="peer.created"] details summary').first().textContent()).toContain("name=contractor-laptop");
    await page.locator('tr[data-action="connection.established"] a.cid').first().waitFor();
    await shot("audit.png");
    for (const path of ["/", "/connections", "/logs", "/errors", "/audit"]) await page.goto(`${base}${path}`);
    await page.goto(`${base}/connections`);
    await page.waitForResponse((r) => r.url().includes("/connections/rows"), { timeout: 5_000 });
    expect(cspViolations).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 30_000);
});
