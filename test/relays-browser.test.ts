// The Relays page and an ICE client's path on the Connections pages, in Chromium (loopback only):
// the admin app with a gateway snapshot as portal mode produces it, no CSP violation, and
// screenshots (GLASSGATE_SCREENSHOTS=DIR: relays.png, connections-path.png, connection-ice.png).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { RELAY, setup } from "../admin/testing.ts";
import { CHROMIUM, screenshot, watchPage } from "./support/browser.ts";

const skip = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (.ci/run installs Debian chromium)`;
if (skip) console.warn(`skipping relays browser test: ${skip}`);

describe.skipIf(skip !== undefined)("portal-mode pages in the browser", () => {
  let browser: Browser;
  let page: Page;
  let server: ReturnType<typeof Bun.serve>;
  const violations: string[] = [];
  let base = "";
  let cid = 0;

  beforeAll(async () => {
    const s = setup({ relays: () => [RELAY] });
    const conn = s.conns[0]!;
    conn.path = "relay via 203.0.113.50:3478";
    conn.endpoint = "192.0.2.44:40000";
    cid = conn.cid;
    // The timeline lines the node's ICE log writes for this connection (node/ice-log.ts).
    const ice = s.log.target("ice");
    ice.info("ice candidate added", { cid, side: "local", type: "relay", address: "203.0.113.50:50012", priority: 16777215 });
    ice.info("ice candidate added", { cid, side: "remote", type: "host", address: "192.0.2.44:40000", priority: 2130706431 });
    ice.info("ice pair succeeded", { cid, pair: "relay 203.0.113.50:50012 -> host 192.0.2.44:40000", from: "in_progress" });
    ice.info("ice pair nominated", { cid, local: "relay 203.0.113.50:50012", remote: "host 192.0.2.44:40000", relayed: true });
    ice.info("connection path changed", { cid, client: "client-1", path: "relay via 203.0.113.50:3478", remote: "192.0.2.44:40000" });
    await s.store.auth.createUser("alice", "correct horse", "test");
    server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: s.app.fetch });
    base = `http://127.0.0.1:${server.port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    watchPage(page, violations);
    await page.goto(`${base}/login`);
    await page.fill('input[name="username"]', "alice");
    await page.fill('input[name="password"]', "correct horse");
    await page.click('button[type="submit"]');
    await page.waitForURL(`${base}/`);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    server?.stop(true);
  });

  test("Relays: the allocation, its lifetime and its channel", async () => {
    await page.goto(`${base}/relays`);
    expect(await page.locator('tr[data-relay="relay-eu-1"]').textContent()).toContain("203.0.113.50:50012");
    expect(await page.locator('table[data-testid="channels"]').textContent()).toContain("0x4001");
    await screenshot(page, "relays.png");
  });

  test("Connections: the path column, and the connection's page with its path and ICE timeline", async () => {
    await page.goto(`${base}/connections`);
    expect(await page.locator('[data-testid="path"]').first().textContent()).toBe("relay via 203.0.113.50:3478");
    await screenshot(page, "connections-path.png");
    await page.goto(`${base}/connections/${cid}`);
    expect(await page.locator('td[data-testid="path"]').textContent()).toBe("relay via 203.0.113.50:3478");
    const body = (await page.textContent("main")) ?? "";
    expect(body).toContain("ice pair nominated");
    await screenshot(page, "connection-ice.png");
    expect(violations).toEqual([]);
  });
});
