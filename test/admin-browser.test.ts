// The admin UI in a real browser (Debian chromium driven by playwright-core) against a real
// `glassgate up` with real wireguard-go clients. Chromium runs inside the gateway's namespace
// (through a wrapper), because that is where the admin server listens (127.0.0.1:8080).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { Topology } from "./support/topology.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const CHROMIUM = "/usr/bin/chromium";
const skip = skipReason(["ip", "wg", "wg-quick", "wireguard-go", "ping"]) ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (.ci/run installs Debian chromium)`);
if (skip) console.warn(`skipping admin browser tests: ${skip}`);

const USER = "ops";
const PASSWORD = "glassgate-test-pw";
/** GLASSGATE_SCREENSHOTS=DIR saves the pages the closing note describes. */
const SHOTS = process.env.GLASSGATE_SCREENSHOTS;

describe.skipIf(skip !== undefined)("admin UI in a browser", () => {
  let topo: Topology;
  let browser: Browser;
  let page: Page;
  const base = "http://127.0.0.1:8080";

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 2);
    await topo.configureClient(topo.clients[0]!);
    // Client 0 is in the config file; client 1 will be created in the UI.
    await topo.startGateway({
      GLASSGATE_ADMIN_USER: USER,
      GLASSGATE_ADMIN_PASSWORD: PASSWORD,
      GLASSGATE_ENDPOINT: `${topo.gwUnderlayFor(topo.clients[1]!)}:52625`,
    }, 1);
    const wrapper = join(topo.dir, "chromium-in-gw.sh");
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${topo.gw.name} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    browser = await chromium.launch({
      executablePath: wrapper,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await topo?.destroy();
  });

  const shot = async (name: string) => {
    if (!SHOTS) return;
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, name), fullPage: true });
  };

  test("unauthenticated visits land on the login page; a wrong password is refused", async () => {
    await page.goto(`${base}/connections`);
    expect(new URL(page.url()).pathname).toBe("/login");
    await page.fill('input[name="username"]', USER);
    await page.fill('input[name="password"]', "wrong password");
    await page.click('button[type="submit"]');
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").textContent()).toContain("Wrong username or password");
  });

  test("log in and watch a wireguard-go peer appear live on Connections", async () => {
    await page.fill('input[name="username"]', USER);
    await page.fill('input[name="password"]', PASSWORD);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${base}/connections`);
    const c = topo.clients[0]!;
    const row = page.locator(`tr[data-state]`, { hasText: c.publicKey });
    expect(await row.getAttribute("data-state")).toBe("idle");
    // The page is open; now the client connects. htmx polling must bring the change in.
    expect(sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "2", "-W", "2", topo.lanIp], { allowFail: true })).toContain("2 received");
    await page.locator(`tr[data-state="connected"]`, { hasText: c.publicKey }).waitFor({ timeout: 10_000 });
    const text = await page.locator(`tr[data-state="connected"]`, { hasText: c.publicKey }).textContent();
    expect(text).toMatch(/\(\d+\|\d+\)/); // session index (cid|slot)
    expect(text).toContain(c.underlayIp);
    await shot("connections.png");
  });

  test("add a peer in the UI, connect a client with its config, see the audit row, filter logs by its cid", async () => {
    await page.goto(`${base}/peers`);
    await page.fill('#peer-form input[name="name"]', "browser-laptop");
    await page.click('#peer-form button[type="submit"]');
    await page.waitForURL(/\/peers\/.+\/config$/);
    const config = await page.locator("#client-config").textContent();
    expect(config).toContain("[Interface]");
    expect(await page.locator("svg").count()).toBeGreaterThan(0);
    await shot("peer-config.png");

    const c = topo.clients[1]!;
    await topo.configureClientFromFile(c, config!);
    // The generated config routes the gateway's tunnel subnet: reach the gateway through it.
    await waitFor("the UI-created peer to connect", () => sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "1", "-W", "1", topo.gwTunnelIp], { allowFail: true }).includes("1 received"), 20_000, 200);

    const pub = sh(["ip", "netns", "exec", c.ns.name, "wg", "show", c.wgIf, "public-key"]).trim();
    await page.goto(`${base}/connections`);
    const row = page.locator(`tr[data-state="connected"]`, { hasText: pub });
    await row.waitFor({ timeout: 10_000 });
    const cid = await row.getAttribute("data-cid");

    await page.goto(`${base}/audit`);
    expect(await page.locator('tr[data-action="peer.created"]').first().textContent()).toContain(`admin:${USER}`);
    await waitFor("connection.established audit row", async () => {
      await page.goto(`${base}/audit?action=connection.established`);
      return (await page.locator("tbody tr").allTextContents()).some((t) => t.includes(pub));
    });

    await page.goto(`${base}/logs`);
    await page.fill('#log-filter input[name="cid"]', cid!);
    await page.click('#log-filter button[type="submit"]');
    await page.waitForURL(new RegExp(`cid=${cid}`));
    const lines = await page.locator("#log-rows tr").allTextContents();
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toContain(`cid=${cid}`);
    expect(lines.join("\n")).toContain("handshake completed");
  }, 60_000);
});
