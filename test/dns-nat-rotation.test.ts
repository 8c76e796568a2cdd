// DNS-resource NAT against a resolver that rotates its answer: a long-lived TCP connection made
// through a proxy address must stay on the server it started with when the gateway re-resolves
// the name (every 30 s) and gets another address; only new connections go to the new one.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Topology } from "./support/topology.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "wg", "wireguard-go"]);
if (skip) console.warn(`skipping DNS NAT rotation test: ${skip}`);
const SUPPORT = join(import.meta.dir, "support");

describe.skipIf(skip !== undefined)("DNS-resource NAT when the resolver rotates its answer", () => {
  let topo: Topology;
  let servers: [string, string];

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    const c = topo.clients[0]!;
    await topo.configureClient(c);
    c.ns.exec(["wg", "set", c.wgIf, "peer", sh(["wg", "pubkey"], { stdin: Buffer.from(topo.gwKey).toString("base64") }).trim(),
      "allowed-ips", `10.99.${topo.net}.0/24,10.202.${topo.net}.0/24,100.96.0.0/11`]);
    c.ns.exec(["ip", "route", "add", "100.96.0.0/11", "dev", c.wgIf]);
    // Two real servers for one name, on two addresses of the LAN host.
    servers = [`10.202.${topo.net}.10`, `10.202.${topo.net}.11`];
    for (const s of servers) topo.lan.exec(["ip", "addr", "add", `${s}/24`, "dev", `lg${topo.tag}`]);
    const dns = topo.lan.start(["bun", join(SUPPORT, "dns-rotate.ts"), topo.lanIp, "rr.test.internal", ...servers]);
    const web = topo.lan.start(["bun", join(SUPPORT, "tcp-whoami.ts"), "7000", ...servers]);
    await dns.stdout.getReader().read();
    await web.stdout.getReader().read();
    await topo.startGateway({}, 1, {
      sections: `[Resource]\nId = rr\nType = dns\nAddress = *.test.internal\n`,
      peerLines: { 0: ["Resources = rr"] },
      interfaceLines: [`DNS = ${topo.lanIp}`],
    });
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test("a long-lived TCP connection stays on its server across re-resolutions; new connections use the new answer", async () => {
    const c = topo.clients[0]!;
    const answer = JSON.parse(sh(["ip", "netns", "exec", c.ns.name, "bun", join(SUPPORT, "dns-query.ts"), topo.gwTunnelIp, "rr.test.internal", "A"]));
    const proxy: string = answer.addresses[0];
    expect(proxy).toMatch(/^100\./);
    // 45 s of one line every 300 ms: longer than the gateway's 30 s resolution cache.
    const flow = c.ns.start(["bun", join(SUPPORT, "tcp-stay.ts"), proxy, "7000", "45", "300"]);
    const output = new Response(flow.stdout).text();
    const changes = () => topo.gatewayLog.split("\n").filter((l) => l.includes('"msg":"DNS resource addresses changed"'));
    // The first lookup, then the re-resolution that got the other address.
    await waitFor("the gateway to re-resolve and get the other address", () => changes().length >= 2, 60_000, 200);
    expect(JSON.parse(changes()[1]!)).toMatchObject({ domain: "rr.test.internal" });
    // A connection opened now reaches the newest answer…
    const fresh = JSON.parse(sh(["ip", "netns", "exec", c.ns.name, "bun", join(SUPPORT, "tcp-stay.ts"), proxy, "7000", "0.1", "10"]));
    expect(fresh.error).toBeUndefined();
    // …while the long-lived one keeps talking to the server it started with.
    const long = JSON.parse(await output) as { replies: string[]; sent: number; error?: string };
    expect(long.error).toBeUndefined();
    expect(long.replies.length).toBe(long.sent);
    expect(long.replies.length).toBeGreaterThan(100);
    expect(new Set(long.replies).size).toBe(1);
    expect(servers).toContain(long.replies[0]!);
    expect(fresh.replies[0]).not.toBe(long.replies[0]);
  }, 120_000);
});
