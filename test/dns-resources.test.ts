// DNS resources end to end: a stock wireguard-go client asks the gateway's resolver (its tunnel
// address) for a resource name, gets proxy addresses, connects to one, and the gateway resolves
// the name with a real DNS server (dnsmasq in the LAN namespace) and translates both ways.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Topology } from "./support/topology.ts";
import { spawnSync } from "bun";
import { missingCommands, sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "dnsmasq"]);
if (skip) console.warn(`skipping DNS resource tests: ${skip}`);
const SUPPORT = join(import.meta.dir, "support");

describe.skipIf(skip !== undefined)("DNS resources through the gateway's resolver and NAT", () => {
  let topo: Topology;
  const query = (name: string, type = "A"): { rcode?: number; addresses?: string[]; error?: string } =>
    JSON.parse(sh(["ip", "netns", "exec", topo.clients[0]!.ns.name, "bun", join(SUPPORT, "dns-query.ts"), topo.gwTunnelIp, name, type]));
  const probe = (ip: string, port: number) =>
    JSON.parse(sh(["ip", "netns", "exec", topo.clients[0]!.ns.name, "bun", join(SUPPORT, "tcp-probe.ts"), ip, String(port)])) as { ok: boolean; error?: string };

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    const c = topo.clients[0]!;
    await topo.configureClient(c);
    // The client routes Firezone's proxy range through the tunnel, as a Firezone client would.
    c.ns.exec(["wg", "set", c.wgIf, "peer", sh(["wg", "pubkey"], { stdin: Buffer.from(topo.gwKey).toString("base64") }).trim(),
      "allowed-ips", `10.99.${topo.net}.0/24,10.202.${topo.net}.0/24,100.96.0.0/11`]);
    c.ns.exec(["ip", "route", "add", "100.96.0.0/11", "dev", c.wgIf]);
    topo.lan.start(["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces", `--listen-address=${topo.lanIp}`,
      `--address=/app.test.internal/${topo.lanIp}`, `--address=/plain.test.other/${topo.lanIp}`, "--pid-file="]);
    const listener = topo.lan.start(["bun", join(SUPPORT, "tcp-listen.ts"), topo.lanIp, "22", "80"]);
    await listener.stdout.getReader().read();
    await topo.startGateway({}, 1, {
      sections: `[Resource]\nId = web\nType = dns\nAddress = *.test.internal\nFilters = tcp/22\n`,
      peerLines: { 0: ["Resources = web"] },
      interfaceLines: [`DNS = ${topo.lanIp}`],
    });
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test("a resource name resolves to proxy addresses; connecting reaches the real server through the NAT", async () => {
    const a = query("app.test.internal");
    expect(a.rcode).toBe(0);
    expect(a.addresses!.length).toBe(4);
    for (const ip of a.addresses!) expect(ip).toMatch(/^100\.(9[6-9]|1[01][0-9]|12[0-7])\./);
    const aaaa = query("app.test.internal", "AAAA");
    expect(aaaa.addresses!.every((ip) => ip.startsWith("fd00:2021:1111:8"))).toBe(true);
    // The first packet triggers the gateway's own lookup at dnsmasq; TCP retries the SYN.
    const r = probe(a.addresses![0]!, 22);
    expect(r).toMatchObject({ ok: true });
    // The filter applies to the resource behind the proxy address.
    expect(probe(a.addresses![1]!, 80)).toMatchObject({ ok: false, error: "EHOSTUNREACH" });
    const line = await waitFor("the answer in the log", () => topo.gatewayLog.split("\n").find((l) => l.includes('"msg":"resource name answered with proxy addresses"')));
    expect(JSON.parse(line)).toMatchObject({ target: "dns", rid: "web", domain: "app.test.internal" });
  }, 30_000);

  test("other names are forwarded to the upstream resolver", () => {
    const r = query("plain.test.other");
    expect(r).toMatchObject({ rcode: 0, addresses: [topo.lanIp] });
  });

  test("/metrics counts the resolver's answers, forwarded queries and the gateway's own lookups; promtool finds nothing wrong", () => {
    const text = topo.api("/metrics").body;
    const value = (series: string) => Number(text.split("\n").find((l) => l.startsWith(`${series} `))?.split(" ")[1]);
    expect(value('glassgate_dns_queries_total{outcome="answered"}')).toBeGreaterThanOrEqual(2);
    expect(value('glassgate_dns_queries_total{outcome="forwarded"}')).toBeGreaterThanOrEqual(1);
    expect(value('glassgate_dns_upstream_queries_total{outcome="answered"}')).toBeGreaterThanOrEqual(1);
    expect(value('glassgate_dns_resource_lookups_total{outcome="resolved"}')).toBeGreaterThanOrEqual(1);
    expect(value('glassgate_dns_upstream_replies_dropped_total{reason="wrong_source"}')).toBe(0);
    expect(value('glassgate_dns_nat_flows_refused_total{reason="table_limit"}')).toBe(0);
    expect(value("glassgate_dns_proxy_names")).toBe(1);
    if (missingCommands(["promtool"]).length === 0) {
      const r = spawnSync(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(text) });
      expect(r.stdout.toString() + r.stderr.toString()).toBe("");
      expect(r.exitCode).toBe(0);
    }
  });

  test("proxy addresses stay the same across a gateway restart", async () => {
    const before = query("app.test.internal").addresses!;
    await topo.stopGateway();
    await topo.startGateway({}, 1, {
      sections: `[Resource]\nId = web\nType = dns\nAddress = *.test.internal\nFilters = tcp/22\n`,
      peerLines: { 0: ["Resources = web"] },
      interfaceLines: [`DNS = ${topo.lanIp}`],
    });
    // The client re-handshakes by itself (as in the restart test); meanwhile query again.
    const after = await waitFor("the gateway resolver after restart", () => query("app.test.internal").addresses, 40_000, 500);
    expect(after).toEqual(before);
  }, 60_000);
});
