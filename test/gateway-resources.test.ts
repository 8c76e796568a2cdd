// Resources and authorizations enforced on real traffic: a stock wireguard-go client reaches an
// allowed CIDR resource on an allowed port, is refused (at once, by ICMP) on another, and loses
// access when its authorization expires.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Topology } from "./support/topology.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping gateway resource tests: ${skip}`);
const SUPPORT = join(import.meta.dir, "support");
const EXPIRY_MS = 12_000;

describe.skipIf(skip !== undefined)("gateway resources with wireguard-go clients", () => {
  let topo: Topology;
  let expiresAt: number;

  const probe = (i: number, port: number): { ok: boolean; error?: string; ms: number } =>
    JSON.parse(sh(["ip", "netns", "exec", topo.clients[i]!.ns.name, "bun", join(SUPPORT, "tcp-probe.ts"), topo.lanIp, String(port)]));

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 2);
    for (const c of topo.clients) await topo.configureClient(c);
    const listener = topo.lan.start(["bun", join(SUPPORT, "tcp-listen.ts"), topo.lanIp, "22", "80"]);
    await listener.stdout.getReader().read();
    expiresAt = Date.now() + EXPIRY_MS;
    await topo.startGateway({}, 2, {
      sections: `[Resource]\nId = lan\nName = LAN SSH\nType = cidr\nAddress = 10.202.${topo.net}.0/24\nFilters = tcp/22, icmp\n`,
      peerLines: { 0: ["Resources = lan"], 1: [`Resources = lan@${new Date(expiresAt).toISOString()}`] },
    });
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test("an allowed port connects; another port is refused at once with 'administratively prohibited'", async () => {
    expect(probe(0, 22)).toMatchObject({ ok: true });
    const denied = probe(0, 80);
    expect(denied.ok).toBe(false);
    // The gateway's ICMP error makes the kernel fail the connect immediately, not after a timeout.
    expect(denied.error).toBe("EHOSTUNREACH");
    expect(denied.ms).toBeLessThan(3_000);
    const metrics = topo.api("/metrics").body;
    expect(metrics).toMatch(/glassgate_packets_dropped_total\{reason="filtered"\} [1-9]/);
    const line = await waitFor("the denial in the log", () => topo.gatewayLog.split("\n").find((l) => l.includes('"msg":"packet denied"')));
    expect(JSON.parse(line)).toMatchObject({ level: "info", target: "gateway", reason: "filtered", rid: "lan", protocol: "tcp", port: 80, dst: topo.lanIp });
    expect(typeof JSON.parse(line).cid).toBe("number");
  });

  test("ICMP is allowed by the filter; a destination outside every resource is refused", () => {
    expect(sh(["ip", "netns", "exec", topo.clients[0]!.ns.name, "ping", "-c", "2", "-i", "0.2", "-W", "2", topo.lanIp], { allowFail: true })).toContain("2 received");
    // The gateway's own tunnel address is in no resource: the client is told so at once.
    const out = sh(["ip", "netns", "exec", topo.clients[0]!.ns.name, "ping", "-c", "1", "-W", "2", topo.gwTunnelIp], { allowFail: true });
    expect(out).toContain("Packet filtered");
    expect(topo.api("/metrics").body).toMatch(/glassgate_packets_dropped_total\{reason="no_resource"\} [1-9]/);
  });

  test("access stops when the authorization expires", async () => {
    expect(probe(1, 22)).toMatchObject({ ok: true });
    await Bun.sleep(Math.max(0, expiresAt - Date.now() + 500));
    await waitFor("the expiry to be logged", () => topo.gatewayLog.includes('"msg":"authorization expired"'), 5_000);
    // Its only resource is gone: the gateway says goodbye to that client (Firezone behaviour).
    await waitFor("the goodbye", () => topo.gatewayLog.includes('"msg":"goodbye sent: no resources left"'), 5_000);
    const after = probe(1, 22);
    expect(after.ok).toBe(false);
    expect(after.error).toBe("EHOSTUNREACH");
    // The other client's authorization has no expiry and still works.
    expect(probe(0, 22)).toMatchObject({ ok: true });
  }, 30_000);
});
