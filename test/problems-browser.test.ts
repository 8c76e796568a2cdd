// A named problem in a real browser: a wireguard-go client with the wrong preshared key, and its
// connection page in Chromium showing the banner — what is wrong, the likely cause, the fix — and
// the state "awaiting confirmation" instead of a healthy-looking "connected". Chromium runs in the
// gateway's namespace, as in admin-browser.test.ts. GLASSGATE_SCREENSHOTS=DIR saves the page.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { Topology, type Client } from "./support/topology.ts";
import { skipReason, uniqueTag } from "./support/netns.ts";

const CHROMIUM = "/usr/bin/chromium";
const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]) ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (.ci/run installs Debian chromium)`);
if (skip) console.warn(`skipping problem banner browser test: ${skip}`);
const SHOTS = process.env.GLASSGATE_SCREENSHOTS;

describe.skipIf(skip !== undefined)("a named problem in the browser", () => {
  let topo: Topology;
  let browser: Browser;
  let client: Client;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    client = topo.clients[0]!;
    await topo.configureClient(client);
    const pskFile = join(topo.dir, "client-psk");
    writeFileSync(pskFile, encodeKey(generatePrivateKey()));
    client.ns.exec(["wg", "set", client.wgIf, "peer", encodeKey(publicKeyOf(topo.gwKey)), "preshared-key", pskFile]);
    await topo.startGateway({ GLASSGATE_ADMIN_USER: "ops", GLASSGATE_ADMIN_PASSWORD: "correct horse battery" }, 1, {
      peerLines: { 0: [`PresharedKey = ${encodeKey(generatePrivateKey())}`] },
    });
    client.ns.start(["ping", "-c", "40", "-i", "1", "-W", "1", topo.gwTunnelIp]);
    const wrapper = join(topo.dir, "chromium-in-gw.sh");
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${topo.gw.name} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    browser = await chromium.launch({ executablePath: wrapper, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await topo?.destroy();
  });

  test("the connection page of a client with the wrong preshared key shows the mismatch banner and is not 'connected'", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (m) => {
      if (/Content Security Policy|Refused to (apply|execute|load|connect|frame)/i.test(m.text())) cspViolations.push(m.text());
    });
    const base = "http://127.0.0.1:8080";
    await page.goto(`${base}/connections`);
    await page.fill('input[name="username"]', "ops");
    await page.fill('input[name="password"]', "correct horse battery");
    await page.click('button[type="submit"]');
    await page.waitForURL(`${base}/connections`);
    const cid = topo.connections()[0]!.cid;
    // The banner appears after three unconfirmed handshakes (wireguard-go retries every 5 s).
    const banner = page.locator('[data-problem="psk_mismatch"]');
    for (let i = 0; i < 30 && (await banner.count()) === 0; i++) {
      await page.goto(`${base}/connections/${cid}`);
      if ((await banner.count()) === 0) await page.waitForTimeout(1000);
    }
    await banner.waitFor({ timeout: 1000 });
    expect(await banner.getAttribute("role")).toBe("alert");
    const text = (await banner.textContent())!;
    expect(text).toContain("preshared key mismatch");
    expect(text).toContain("Likely cause:");
    expect(text).toContain("Fix to try:");
    expect(await page.locator(".pill.awaiting_confirmation").textContent()).toBe("awaiting confirmation");
    // The banner's style comes from app.css (no inline styles under the CSP): it is visibly set off.
    expect(await banner.evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { borderLeftStyle: string } }).getComputedStyle(el).borderLeftStyle)).toBe("solid");
    if (SHOTS) {
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, "connection-problem.png"), fullPage: true });
    }
    expect(cspViolations).toEqual([]);
    await page.close();
  }, 60_000);
});
