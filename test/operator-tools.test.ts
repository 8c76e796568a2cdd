// Operator tools against a real `glassgate up` and a real wireguard-go client in namespaces this
// test creates: a packet capture started through the API, read back by Debian's tcpdump; the
// policy tester and the capture panel in Chromium (under the admin's CSP, as admin-browser does).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type Page } from "playwright-core";
import { CHROMIUM, launchChromiumIn, screenshot, watchPage } from "./support/browser.ts";
import { Topology } from "./support/topology.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping", "tcpdump"]);
if (skip) console.warn(`skipping operator tools tests: ${skip}`);
const browserSkip = skip ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (.ci/run installs Debian chromium)`);
/** GLASSGATE_SCREENSHOTS=DIR saves the policy tester and the capture panel. */
const USER = "ops";
const PASSWORD = "operator tools test password";

interface AuditRow { action: string; actor: string; cid: number | null; reason: string | null; after: string | null }

describe.skipIf(skip !== undefined)("operator tools with a real client", () => {
  let topo: Topology;
  let cid = 0;
  const base = "http://127.0.0.1:8080";

  const ping = (count: number) => {
    const c = topo.clients[0]!;
    return sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", String(count), "-i", "0.2", "-W", "2", topo.lanIp], { allowFail: true });
  };
  const audit = (action: string): AuditRow[] => JSON.parse(topo.api(`/api/audit?action=${action}&cid=${cid}`).body).rows;
  /** The pcap as bytes (topo.api reads text), written where tcpdump can read it. */
  const download = (file: string) => {
    const script = `const r = await fetch("${base}/api/connections/${cid}/capture.pcap", { headers: { authorization: "Bearer ${"test-token-0123456789"}" } });` +
      `if (r.status !== 200) throw new Error("status " + r.status); await Bun.write(${JSON.stringify(file)}, await r.arrayBuffer());`;
    topo.gw.exec(["bun", "-e", script]);
  };

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    await topo.configureClient(topo.clients[0]!);
    // One resource: the LAN, ICMP and SSH only — pings pass, HTTPS is filtered (the tester's deny).
    await topo.startGateway({ GLASSGATE_ADMIN_USER: USER, GLASSGATE_ADMIN_PASSWORD: PASSWORD }, 1, {
      sections: `[Resource]\nId = lan\nName = LAN\nType = cidr\nAddress = 10.202.${topo.net}.0/24\nFilters = tcp/22, icmp\n`,
      peerLines: { 0: ["Resources = lan"] },
    });
    expect(ping(1)).toContain("1 received");
    cid = topo.connections().find((x) => x.public_key === topo.clients[0]!.publicKey)!.cid;
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test("a capture started through the API records a ping both ways, and tcpdump reads the pcap", () => {
    const started = topo.request("POST", `/api/connections/${cid}/capture`, { max_packets: 100, max_seconds: 120 });
    expect(started.status).toBe(201);
    expect(JSON.parse(started.body)).toMatchObject({ state: "running", limits: { max_packets: 100, max_bytes: 1048576, max_seconds: 120 } });
    expect(ping(3)).toContain("3 received");
    const stopped = topo.request("DELETE", `/api/connections/${cid}/capture`);
    expect(JSON.parse(stopped.body)).toMatchObject({ state: "stopped", stop_reason: "stopped", stopped_by: "token:env" });
    expect(JSON.parse(stopped.body).packets).toBeGreaterThanOrEqual(6);

    const file = join(topo.dir, "capture.pcap");
    download(file);
    const out = sh(["tcpdump", "-r", file, "-nn"]);
    const c = topo.clients[0]!;
    expect(out).toMatch(new RegExp(`IP ${c.tunnelIp.replaceAll(".", "\\.")} > ${topo.lanIp.replaceAll(".", "\\.")}: ICMP echo request`));
    expect(out).toMatch(new RegExp(`IP ${topo.lanIp.replaceAll(".", "\\.")} > ${c.tunnelIp.replaceAll(".", "\\.")}: ICMP echo reply`));
    expect(out.match(/ICMP echo request/g)!.length).toBe(3);
    expect(out.match(/ICMP echo reply/g)!.length).toBe(3);

    const start = audit("capture.started");
    expect(start).toHaveLength(1);
    expect(start[0]).toMatchObject({ actor: "token:env", cid });
    expect(JSON.parse(start[0]!.after!)).toEqual({ max_packets: 100, max_bytes: 1048576, max_seconds: 120 });
    const stop = audit("capture.stopped");
    expect(stop[0]).toMatchObject({ actor: "token:env", cid, reason: "stopped" });
    expect(JSON.parse(stop[0]!.after!).packets).toBe(JSON.parse(stopped.body).packets);
  }, 30_000);

  test("a capture stops by itself at its packet limit, and the audit says so", () => {
    expect(topo.request("POST", `/api/connections/${cid}/capture`, { max_packets: 2 }).status).toBe(201);
    expect(ping(3)).toContain("3 received");
    expect(JSON.parse(topo.api(`/api/connections/${cid}/capture`).body)).toMatchObject({ state: "stopped", stop_reason: "max_packets", stopped_by: "gateway", packets: 2 });
    const file = join(topo.dir, "limited.pcap");
    download(file);
    expect(sh(["tcpdump", "-r", file, "-nn"]).trim().split("\n")).toHaveLength(2);
    expect(audit("capture.stopped")[0]).toMatchObject({ actor: "gateway", reason: "max_packets" });
  }, 30_000);

  test("the policy tester API answers a filtered port with its decision path", () => {
    const key = encodeURIComponent(topo.clients[0]!.publicKey);
    const r = JSON.parse(topo.api(`/api/policy/test?peer=${key}&dst=${topo.lanIp}&port=443&protocol=tcp`).body);
    expect(r).toMatchObject({ verdict: "deny", reason: "filtered", resource: "lan", peer: { cid, source: "file" } });
    expect(JSON.parse(topo.api(`/api/policy/test?peer=${cid}&dst=${topo.lanIp}&protocol=icmp`).body)).toMatchObject({ verdict: "allow" });
  });

  describe.skipIf(browserSkip !== undefined)("in a browser", () => {
    let browser: Browser;
    let page: Page;
    const problems: string[] = [];

    beforeAll(async () => {
      browser = await launchChromiumIn(topo.gw.name, topo.dir);
      page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      watchPage(page, problems);
      await page.goto(`${base}/login`);
      await page.fill('input[name="username"]', USER);
      await page.fill('input[name="password"]', PASSWORD);
      await page.click('button[type="submit"]');
      await page.waitForURL((u) => u.pathname !== "/login");
    }, 60_000);

    afterAll(async () => {
      await browser?.close();
    });

    const shot = (name: string) => screenshot(page, name);

    test("the policy tester shows a deny with its decision path", async () => {
      await page.goto(`${base}/`);
      await page.click('header a[href="/tools/policy"]');
      await page.fill('#policy-form input[name="peer"]', topo.clients[0]!.publicKey);
      await page.fill('#policy-form input[name="dst"]', topo.lanIp);
      await page.selectOption('#policy-form select[name="protocol"]', "tcp");
      await page.fill('#policy-form input[name="port"]', "443");
      await page.click('#policy-form button[type="submit"]');
      const verdict = page.locator("#policy-verdict");
      await verdict.waitFor();
      expect(await verdict.getAttribute("data-verdict")).toBe("deny");
      expect(await verdict.getAttribute("data-reason")).toBe("filtered");
      const steps = await page.locator(".decision-path li").allTextContents();
      expect(steps.map((s) => s.trim().split(/\s+/)[1])).toEqual(["peer", "resource", "authorization", "filter"]);
      expect(steps[3]).toContain('tcp/443 matches none of "lan"\'s filters (tcp/22, icmp)');
      await shot("policy-tester.png");
      expect(problems).toEqual([]);
    }, 30_000);

    test("a capture started on the connection page counts live and can be stopped and downloaded", async () => {
      await page.goto(`${base}/connections/${cid}`);
      await page.fill('#capture-form input[name="max_packets"]', "50");
      await page.click("#capture-start");
      await page.locator('#capture[data-capture="running"]').waitFor();
      expect(ping(2)).toContain("2 received");
      // The panel refreshes itself (htmx): the count appears without a reload.
      await waitFor("the capture count to show the ping", async () => Number(await page.locator('[data-testid="capture-packets"]').textContent()) >= 4, 10_000, 200);
      await shot("connection-capture-running.png");
      await page.click("#capture-stop");
      await page.locator('#capture[data-capture="stopped"]').waitFor();
      expect(await page.locator("#capture").textContent()).toContain(`stopped by admin:${USER}`);
      const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#capture-download")]);
      const file = join(topo.dir, "browser.pcap");
      await dl.saveAs(file);
      expect(sh(["tcpdump", "-r", file, "-nn"])).toContain("ICMP echo reply");
      await shot("connection-capture-finished.png");
      expect(problems).toEqual([]);
    }, 30_000);
  });
});
