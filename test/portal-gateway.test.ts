// `glassgate up --portal` against the dev portal: the gateway process runs in a namespace this test
// creates, the dev portal in the test on the host end of a veth into it. A client joins the dev
// portal over the `client` topic (the test plays it with the project's own channel) and asks for a
// resource, so the gateway gets a real authorize_flow. Then the portal misbehaves as a real one
// can: it restarts mid-session, sends garbage, stalls a join, and finally expires the token.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { encodeKey, generateKeyPair } from "../src/crypto/x25519.ts";
import { PortalSocket } from "../src/io/portal-socket.ts";
import { clientChannel, loginUrl, type ClientEgress, type ClientIngress } from "../src/portal/index.ts";
import { startDevPortal, type DevPortalServer } from "../tools/dev-portal/server.ts";
import { parseSeed } from "../tools/dev-portal/seed.ts";
import { CHROMIUM, launchChromiumIn, screenshot, watchPage } from "./support/browser.ts";
import { Netns, sh, skipReason, uniqueTag, vethInto, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip"]);
if (skip) console.warn(`skipping portal gateway e2e: ${skip}`);

const ADMIN_TOKEN = "portal-e2e-admin-token-0123456789";
const seed = parseSeed({
  account_slug: "e2e",
  gateways: [{ id: "gw-1", name: "edge-1", token: "gateway-token-1", ipv4: "100.64.0.1", ipv6: "fd00:2021:1111::1" }],
  clients: [{ id: "client-1", name: "laptop", token: "client-token-1" }],
  resources: [{ type: "cidr", id: "res-lab", name: "lab", address: "10.77.0.0/24", filters: [] }],
  policies: [{ client: "client-1", resource: "res-lab" }],
});

describe.skipIf(skip !== undefined)("glassgate up --portal with the dev portal", () => {
  const tag = uniqueTag();
  let ns: Netns;
  let hostIf: string;
  let addrs: { hostAddr: string; nsAddr: string };
  let portal: DevPortalServer;
  let gateway: Subprocess<"ignore", "pipe", "pipe">;
  let dataDir: string;
  let log = "";
  const tun = `gp${tag}`.slice(0, 15);
  const lines = () => log.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
  const admin = async (path: string) => (await fetch(`http://${addrs.nsAddr}:8080${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json();
  type Conn = { cid: number; public_key: string; portal?: { client_id: string; name: string | null } };
  const connections = async () => ((await admin("/api/connections")) as { connections: Conn[] }).connections;

  /** A client that joins the dev portal and asks for `rid`; resolves once the flow is created (the gateway authorized it). */
  const flowFor = async (rid: string) => {
    const { publicKey } = generateKeyPair();
    const events: ClientIngress[] = [];
    const client: PortalSocket<ClientIngress, ClientEgress> = new PortalSocket({
      channel: clientChannel({ random: Math.random }),
      url: () => loginUrl({ apiUrl: portal.url, token: "client-token-1", id: "client-1", name: "laptop", publicKey: encodeKey(publicKey), mode: "client" }),
      userAgent: "e2e/1 client/1",
      onEvent: (ev) => void (ev.kind === "message" && events.push(ev.message)),
    });
    client.start();
    await waitFor("the client's init", () => events.some((e) => e.event === "init"), 10_000);
    client.send({ event: "create_flow", payload: { resource_id: rid } });
    await waitFor("flow_created", () => events.find((e) => e.event === "flow_created"), 10_000);
    return client;
  };

  beforeAll(async () => {
    ns = new Netns(`gp${tag}`);
    hostIf = `gph${tag}`.slice(0, 15);
    addrs = vethInto(ns, hostIf, `gpn${tag}`.slice(0, 15), 40 + (Number.parseInt(tag.slice(-2), 36) % 20));
    portal = startDevPortal({ seed, hostname: addrs.hostAddr });
    dataDir = mkdtempSync(join(tmpdir(), "glassgate-portal-"));
    gateway = ns.start(["bun", "src/cli.ts", "up", "--portal", "--interface", tun, "--admin", `${addrs.nsAddr}:8080`, "--data", dataDir], {
      FIREZONE_API_URL: portal.url,
      FIREZONE_TOKEN: "gateway-token-1",
      FIREZONE_ID: "gw-1",
      FIREZONE_NAME: "edge-1",
      GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN,
      GLASSGATE_ADMIN_USER: "admin",
      GLASSGATE_ADMIN_PASSWORD: "portal-e2e-password-1",
      GLASSGATE_LOG: "info",
    });
    void (async () => {
      const dec = new TextDecoder();
      for await (const chunk of gateway.stderr) log += dec.decode(chunk);
    })();
  }, 30_000);

  afterAll(async () => {
    await ns?.destroy();
    await portal?.stop();
    sh(["ip", "link", "del", hostIf], { allowFail: true });
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (log && process.env.PORTAL_E2E_LOG) console.log(log);
  });

  test("init gives the TUN the portal's addresses and routes the client ranges into it", async () => {
    await waitFor("the TUN's portal address", () => ns.exec(["ip", "-o", "addr", "show", "dev", tun], { allowFail: true }).includes("100.64.0.1/32"), 20_000);
    expect(ns.exec(["ip", "-o", "-6", "addr", "show", "dev", tun])).toContain("fd00:2021:1111::1/128");
    expect(ns.exec(["ip", "route", "show", "dev", tun])).toContain("100.64.0.0/11");
    expect(ns.exec(["ip", "-6", "route", "show", "dev", tun])).toContain("fd00:2021:1111::/107");
    // The gateway identified itself as Firezone's gateways do.
    const s = portal.portal.sessions.get("gateway:gw-1")!;
    expect(s.userAgent).toMatch(/ gateway\/\d/);
    expect(s.name).toBe("edge-1");
    // DNS for clients listens on the portal address, port 53535.
    await waitFor("DNS on 53535", () => ns.exec(["ss", "-uln"], { allowFail: true }).includes("100.64.0.1:53535"), 5_000);
  }, 30_000);

  test("a client's flow reaches the gateway as authorize_flow and comes back authorized; the connection shows on the admin API", async () => {
    const { publicKey } = generateKeyPair();
    const events: ClientIngress[] = [];
    const client: PortalSocket<ClientIngress, ClientEgress> = new PortalSocket({
      channel: clientChannel({ random: Math.random }),
      url: () => loginUrl({ apiUrl: portal.url, token: "client-token-1", id: "client-1", name: "laptop", publicKey: encodeKey(publicKey), mode: "client" }),
      userAgent: "e2e/1 client/1",
      onEvent: (ev) => void (ev.kind === "message" && events.push(ev.message)),
    });
    client.start();
    await waitFor("the client's init", () => events.some((e) => e.event === "init"), 10_000);
    client.send({ event: "create_flow", payload: { resource_id: "res-lab" } });
    const created = await waitFor("flow_created", () => events.find((e) => e.event === "flow_created"), 10_000);
    expect(created.event).toBe("flow_created");
    // The gateway's ICE agent signals its host candidates (the veth address, the WireGuard port) through the portal.
    const cands = await waitFor("the gateway's candidates", () => events.find((e) => e.event === "ice_candidates"), 10_000);
    expect(cands.event === "ice_candidates" && cands.payload.candidates.join("\n")).toContain(`${addrs.nsAddr} 52625 typ host`);
    client.send({ event: "broadcast_ice_candidates", payload: { gateway_ids: ["gw-1"], candidates: ["candidate:1 1 udp 2130706431 10.213.99.1 40000 typ host"] } });
    client.stop();
    const mine = (await connections()).find((c) => c.public_key === encodeKey(publicKey));
    expect(mine).toBeDefined();
    expect(mine!.portal).toMatchObject({ client_id: "client-1" });
    const granted = lines().find((l) => l.msg === "authorization granted")!;
    expect(granted).toMatchObject({ target: "portal", client_id: "client-1", rid: "res-lab", cid: mine!.cid });
    expect(typeof granted.gid).toBe("string");
    // The connection page names the portal client and lists the portal messages that touched it.
    const connectionPage = async () => (await fetch(`http://${addrs.nsAddr}:8080/connections/${mine!.cid}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    // The client's candidates arrive as ice_candidates (a timeline row of their own).
    const page = await waitFor("the client's candidates on the timeline", async () => {
      const p = await connectionPage();
      return p.includes('<td class="mono">ice_candidates</td>') && p;
    }, 10_000);
    expect(page).toContain('data-testid="portal-client">client-1<');
    const timeline = page.slice(page.indexOf('data-testid="portal-timeline"'));
    expect(timeline).toContain("authorize_flow");
    expect(timeline).toContain("broadcast_ice_candidates");
  }, 30_000);

  test("the portal restarting mid-session: the gateway rejoins and keeps its connections", async () => {
    const before = (await connections()).length;
    expect(before).toBe(1);
    const joinsBefore = lines().filter((l) => l.msg === "joined portal channel").length;
    const port = portal.port;
    const state = portal.portal;
    await portal.stop();
    await waitFor("the gateway to see the portal gone", () => lines().some((l) => l.msg === "portal socket ended"), 10_000);
    portal = startDevPortal({ seed, hostname: addrs.hostAddr, port, portal: state });
    await waitFor("the rejoin", () => lines().filter((l) => l.msg === "joined portal channel").length > joinsBefore, 20_000);
    expect((await connections()).length).toBe(before);
    expect(lines().filter((l) => l.msg === "portal init applied").at(-1)).toMatchObject({ clients: 1, inits: 2 });
    const overview = (await admin("/api/overview")) as { portal?: { reconnects: number; state: string } };
    expect(overview.portal).toMatchObject({ state: "joined" });
    expect(overview.portal!.reconnects).toBeGreaterThanOrEqual(1);
  }, 40_000);

  test.skipIf(!existsSync(CHROMIUM))("in a browser: the Overview shows the portal, the connection names its portal client and lists portal messages", async () => {
    const browser = await launchChromiumIn(ns.name, dataDir);
    try {
      const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
      const problems: string[] = [];
      watchPage(page, problems);
      const base = `http://${addrs.nsAddr}:8080`;
      await page.goto(`${base}/login`);
      await page.fill('input[name="username"]', "admin");
      await page.fill('input[name="password"]', "portal-e2e-password-1");
      await page.click('button[type="submit"]');
      await page.waitForURL(`${base}/`);
      expect(await page.locator('[data-portal="state"]').textContent()).toBe("joined");
      expect(Number(await page.locator('[data-portal="reconnects"]').textContent())).toBeGreaterThanOrEqual(1);
      expect(await page.locator('[data-portal="join_latency_ms"]').textContent()).toMatch(/^\d+ ms$/);
      await screenshot(page, "portal-overview.png");
      const cid = (await connections())[0]!.cid;
      await page.goto(`${base}/connections`);
      expect(await page.locator(`span[title="portal client client-1"]`).count()).toBe(1);
      await page.goto(`${base}/connections/${cid}`);
      expect(await page.getByTestId("portal-client").textContent()).toBe("client-1");
      expect(await page.getByTestId("portal-timeline").locator("tr").count()).toBeGreaterThanOrEqual(3);
      await screenshot(page, "portal-connection.png");
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 60_000);

  test("garbage from the portal is counted and logged, not fatal", async () => {
    portal.portal.sendRaw("gateway", "gw-1", "this is not a phoenix frame");
    portal.portal.sendRaw("gateway", "gw-1", JSON.stringify({ topic: "gateway", event: "authorize_flow", payload: { ref: 7 }, ref: null }));
    await waitFor("two malformed lines", () => lines().filter((l) => l.msg === "malformed portal message").length >= 2, 5_000);
    const bad = lines().filter((l) => l.msg === "malformed portal message").at(-1)!;
    expect(bad).toMatchObject({ level: "warn", event: "authorize_flow", count: 2, gid: expect.any(String) });
    expect(gateway.exitCode).toBeNull();
    const overview = (await admin("/api/overview")) as { portal?: { malformed: number; state: string } };
    expect(overview.portal).toMatchObject({ malformed: 2, state: "joined" });
  }, 20_000);

  test("the messages the dev portal does not send on its own (raw frames): resource_updated, relays_presence, invalidate_ice_candidates, request_connection → connection_ready, allow_access", async () => {
    const push = (event: string, payload: unknown) => portal.portal.sendRaw("gateway", "gw-1", JSON.stringify({ topic: "gateway", event, payload, ref: null }));
    const KEY9 = encodeKey(generateKeyPair().publicKey);
    const PSK = encodeKey(generateKeyPair().publicKey);
    const cid = (await connections())[0]!.cid;
    push("resource_updated", { type: "cidr", id: "res-lab", name: "lab v2", address: "10.77.0.0/24", filters: [] });
    await waitFor("resource updated", () => lines().some((l) => l.msg === "resource updated" && l.resource === "lab v2"), 5_000);
    const relay = { type: "turn", id: "relay-9", addr: `${addrs.hostAddr}:3478`, username: "u", password: "p", expires_at: Math.floor(Date.now() / 1000) + 3600 };
    push("relays_presence", { disconnected_ids: [], connected: [relay] });
    push("relays_presence", { disconnected_ids: ["relay-9"], connected: [] });
    await waitFor("both relay changes", () => lines().filter((l) => l.msg === "relays changed").length >= 2, 5_000);
    expect(lines().filter((l) => l.msg === "relays changed").slice(-2)).toMatchObject([{ connected: "relay-9" }, { disconnected: "relay-9" }]);
    push("invalidate_ice_candidates", { client_id: "client-1", candidates: ["candidate:1 1 udp 2130706431 10.213.99.1 40000 typ host"] });
    // Deprecated shapes of older portals: a connection request answered with connection_ready, then a second resource.
    push("request_connection", { ref: "old-1", resource: { type: "cidr", id: "res-old", name: "old", address: "10.78.0.0/24", filters: [] }, client: { id: "client-9", payload: { ice_parameters: { username: "u9", password: "p9p9p9p9p9p9p9p9p9p9p9" }, domain: null }, peer: { persistent_keepalive: null, public_key: KEY9, preshared_key: PSK, ipv4: "100.64.0.9", ipv6: "fd00:2021:1111::9" } }, expires_at: null });
    const ready = await waitFor("connection_ready", () => portal.portal.records.find((r) => r.dir === "in" && r.side === "gateway" && r.event === "connection_ready"), 5_000);
    expect(ready.payload).toMatchObject({ ref: "old-1", gateway_payload: { ConnectionAccepted: { ice_parameters: { username: expect.any(String) } } } });
    push("allow_access", { ref: "old-2", client_id: "client-9", resource: { type: "cidr", id: "res-old-2", name: "old 2", address: "10.79.0.0/24", filters: [] }, expires_at: null, payload: null, client_ipv4: "100.64.0.9", client_ipv6: "fd00:2021:1111::9" });
    await waitFor("allow_access granted", () => lines().some((l) => l.msg === "authorization granted" && l.event === "allow_access" && l.client_id === "client-9"), 5_000);
    expect((await connections()).length).toBe(2);
    // Both of client-9's resources rejected: it is told goodbye and gone; client-1 stays.
    push("reject_access", { client_id: "client-9", resource_id: "res-old" });
    push("reject_access", { client_id: "client-9", resource_id: "res-old-2" });
    await waitFor("client-9 gone", async () => (await connections()).length === 1, 5_000);
    const page = await (await fetch(`http://${addrs.nsAddr}:8080/connections/${cid}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    const timeline = page.slice(page.indexOf('data-testid="portal-timeline"'));
    expect(timeline).toContain('<td class="mono">invalidate_ice_candidates</td>');
    expect(timeline).toContain('<td class="mono">resource_updated</td>');
  }, 30_000);

  test("a stalled join is given up after 5 s and retried", async () => {
    const joinsBefore = lines().filter((l) => l.msg === "joined portal channel").length;
    portal.portal.behaviour.stallJoins = true;
    portal.portal.forgetJoin("gateway", "gw-1"); // the next push fails: the gateway reconnects into the stall
    const port = portal.port;
    const state = portal.portal;
    await portal.stop();
    portal = startDevPortal({ seed, hostname: addrs.hostAddr, port, portal: state });
    await waitFor("a reconnect after the join timed out", () => lines().some((l) => l.msg === "reconnecting to portal" && String(l.reason).includes("join")), 20_000);
    portal.portal.behaviour.stallJoins = false;
    await waitFor("the join after the stall", () => lines().filter((l) => l.msg === "joined portal channel").length > joinsBefore, 30_000);
    expect(gateway.exitCode).toBeNull();
  }, 60_000);

  test("the portal moving a flow's expiry ends it then (goodbye, connection gone); reject_access ends a new flow at once", async () => {
    expect((await connections()).length).toBe(1);
    portal.portal.setExpiry("client-1", "res-lab", Math.floor(Date.now() / 1000) + 2);
    await waitFor("the expiry update", () => lines().some((l) => l.msg === "authorization expiry moved" && l.client_id === "client-1"), 5_000);
    await waitFor("the connection to end at the new expiry", async () => (await connections()).length === 0, 10_000);
    expect(lines().find((l) => l.msg === "authorization expired" && l.client_id === "client-1")).toMatchObject({ rid: "res-lab", gid: expect.any(String) });
    expect(lines().some((l) => l.msg === "goodbye sent: no resources left" && l.client_id === "client-1")).toBe(true);

    // A new flow, then the operator revokes the policy: reject_access cuts it.
    const client = await flowFor("res-lab");
    client.stop();
    expect((await connections()).length).toBe(1);
    portal.portal.revoke("client-1", "res-lab");
    await waitFor("reject_access to end the connection", async () => (await connections()).length === 0, 10_000);
    expect(lines().find((l) => l.msg === "authorization revoked by the portal" && l.client_id === "client-1")).toMatchObject({ rid: "res-lab" });
    portal.portal.authorize("client-1", "res-lab");
  }, 40_000);

  test("token_expired ends the gateway with exit code 2 and a clear message", async () => {
    portal.portal.expireToken("gateway", "gw-1");
    const code = await Promise.race([gateway.exited, Bun.sleep(15_000).then(() => "still running")]);
    expect(code).toBe(2);
    await waitFor("the shutdown line", () => log.includes('"msg":"gateway down"'), 5_000);
    expect(log).toMatch(/glassgate: portal: .*token/i);
    // (The goodbye count is 0 here: the test's client never handshook, so there is no session to tell.)
    expect(lines().find((l) => l.msg === "shutting down")).toMatchObject({ reason: "portal connection failed" });
  }, 30_000);
});
