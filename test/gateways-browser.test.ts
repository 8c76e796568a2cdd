// The Gateways page in Chromium: a real gateway on a private PostgreSQL (runStandalone with `pg`,
// in its own namespace, the browser in the same one) beside two other gateways' rows as they
// would publish them — one up with its connections, one stale. Every gateway is listed with its
// health, the connections across gateways each name their gateway, and no CSP violation.
// GLASSGATE_SCREENSHOTS=DIR saves gateways.png (docs/gateways.png is made that way).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { PgStore } from "../src/store/pg-store.ts";
import type { GatewayLive } from "../src/cluster/gateway-presence.ts";
import { CHROMIUM, launchChromiumIn, screenshot, watchPage } from "./support/browser.ts";
import { watch } from "./support/process-lines.ts";
import { Netns, skipReason, uniqueTag } from "./support/netns.ts";
import { postgresSkipReason, TestPostgres } from "./support/postgres.ts";

const skip = skipReason(["ip"]) ?? postgresSkipReason() ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (.ci/run installs Debian chromium)`);
if (skip) console.log(`skipping Gateways browser test: ${skip}`);

const TOKEN = "cluster-test-token";

describe.skipIf(!!skip)("the Gateways page in a browser", () => {
  let pg: TestPostgres;
  let ns: Netns;
  let dir: string;
  let browser: Browser | undefined;
  beforeAll(() => {
    pg = TestPostgres.start();
    ns = new Netns(`gggw${uniqueTag()}`);
    dir = mkdtempSync(join(tmpdir(), "gg-gwpage-"));
  });
  afterAll(async () => {
    await browser?.close();
    await ns?.destroy();
    pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("lists every gateway with its health and the connections across them", async () => {
    const url = pg.createDatabase("gwpage");
    const child = ns.start(["bun", join(import.meta.dir, "support", "pg-gateway.ts"), join(dir, "data"), url, "8080"]);
    const out = watch(child, "clustered gateway");
    const ready = await out.next((l) => l.ready === true, "the gateway up", 60_000);
    const others = await PgStore.open(url, "seeder");
    try {
      const now = Date.now();
      const live: GatewayLive = {
        connections: [
          { cid: 4211, peer: "ana-laptop", endpoint: "198.51.100.23:51820", rx_bytes: 48_211_044, tx_bytes: 3_120_877, last_handshake: new Date(now - 31_000).toISOString(), state: "connected" },
          { cid: 877, peer: "build-runner-3", endpoint: "203.0.113.80:40112", path: "relay via 192.0.2.10:3478", rx_bytes: 912_004, tx_bytes: 8_402_118, last_handshake: new Date(now - 95_000).toISOString(), state: "connected" },
          { cid: 12, peer: "qXh5nE2f0mJtq1oG3c4Hh3o8Xcq0lPZ0eD4v6bq1RlE=", endpoint: null, rx_bytes: 0, tx_bytes: 0, last_handshake: null, state: "idle" },
        ],
        problems: [{ kind: "psk_mismatch", title: "Preshared key mismatch with build-runner-3", since: new Date(now - 600_000).toISOString(), count: 3, cid: 877 }],
      };
      await others.gateways.register({ gid: "7c1e2b9a-5d4f-4e0a-9b3c-2a1f0e9d8c7b", name: "edge-fra-2", publicKey: "FRA2", endpoint: "fra2.vpn.example:52625", version: "0.9.1" }, now - 7200_000);
      await others.gateways.publish("7c1e2b9a-5d4f-4e0a-9b3c-2a1f0e9d8c7b", now - 2000, 2, JSON.stringify(live));
      await others.gateways.register({ gid: "0b6d3f1c-8e2a-4c7d-a5b9-3e4f5a6b7c8d", name: "edge-ams-1", publicKey: "AMS1", endpoint: "ams1.vpn.example:52625", version: "0.9.0" }, now - 86_400_000);
      await others.gateways.publish("0b6d3f1c-8e2a-4c7d-a5b9-3e4f5a6b7c8d", now - 20 * 60_000, 0, JSON.stringify({ connections: [], problems: [] }));
    } finally {
      await others.close();
    }

    browser = await launchChromiumIn(ns.name, dir);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, extraHTTPHeaders: { authorization: `Bearer ${TOKEN}` } });
    const violations: string[] = [];
    watchPage(page, violations);
    await page.goto("http://127.0.0.1:8080/gateways");
    const rows = page.locator("table#gateways tbody tr");
    expect(await rows.count()).toBe(3);
    expect(await page.locator(`tr[data-gid="${ready.gid}"]`).first().getAttribute("data-health")).toBe("up");
    expect(await page.locator('tr[data-gid="7c1e2b9a-5d4f-4e0a-9b3c-2a1f0e9d8c7b"]').first().getAttribute("data-health")).toBe("up");
    const stale = page.locator('table#gateways tr[data-gid="0b6d3f1c-8e2a-4c7d-a5b9-3e4f5a6b7c8d"]');
    expect(await stale.getAttribute("data-health")).toBe("stale");
    expect(await stale.innerText()).toContain("since");
    const cross = page.locator("table#cross-connections tbody tr");
    expect(await cross.count()).toBe(3);
    expect(await cross.first().innerText()).toContain("edge-fra-2");
    expect(await cross.first().locator('a[href="#gw-7c1e2b9a-5d4f-4e0a-9b3c-2a1f0e9d8c7b"]').count()).toBe(1);
    await screenshot(page, "gateways.png");
    expect(violations).toEqual([]);
  }, 120_000);
});
