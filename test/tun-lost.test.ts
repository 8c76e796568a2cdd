// The TUN interface deleted under a running gateway (`ip link del`): the gateway must notice —
// not look healthy while moving nothing — say goodbye to every connected client and exit 1
// with a log line naming the interface and the errno.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { Topology, type Client } from "./support/topology.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping lost-TUN test: ${skip}`);

function ping(c: Client, target: string): boolean {
  return sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "2", "-i", "0.2", "-W", "2", target], { allowFail: true }).includes("2 received");
}

function rxBytes(c: Client): number {
  return Number(c.ns.exec(["wg", "show", c.wgIf, "transfer"]).trim().split(/\s+/)[1]);
}

describe.skipIf(skip !== undefined)("TUN interface deleted under a running gateway", () => {
  let topo: Topology;

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    for (const c of topo.clients) await topo.configureClient(c);
    await topo.startGateway();
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test("deleting the gateway's TUN makes it say goodbye to connected clients and exit 1, naming the interface and errno", async () => {
    const [a] = topo.clients as [Client];
    expect(ping(a, topo.gwTunnelIp)).toBe(true);
    const before = rxBytes(a);
    const tunName = `ggt${topo.tag}`;
    topo.gw.exec(["ip", "link", "del", tunName]);
    const code = await Promise.race([topo.gateway!.exited, Bun.sleep(10_000).then(() => "still running")]);
    expect(code).toBe(1);
    await waitFor("the shutdown log", () => topo.gatewayLog.includes('"msg":"gateway down"'), 5_000);
    const lines = topo.gatewayLog.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    expect(lines.find((l) => l.msg === "TUN read failed")).toMatchObject({ level: "error", target: "io", interface: tunName, errno: "EBADFD", lost: true });
    const fatal = lines.find((l) => l.msg === "fatal error: saying goodbye to every peer and shutting down");
    expect(fatal).toMatchObject({ level: "error", err: `TUN ${tunName} is gone: reading the TUN fails with EBADFD (1 in a row)` });
    expect(lines.find((l) => l.msg === "gateway down")).toMatchObject({ goodbyes_sent: 1 });
    // wireguard-go drops the goodbye but counts it: 16 B header + 48 B control packet + 16 B tag.
    expect(rxBytes(a) - before).toBe(80);
  }, 40_000);
});
