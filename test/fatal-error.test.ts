// A fatal error while running closes like SIGTERM does (Firezone #10401): every connected client
// gets a goodbye, then the gateway exits 1. The error here is a real one: the data dir (a small
// tmpfs) fills up, so the audit row for a new connection cannot be written mid-turn.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { Topology, type Client } from "./support/topology.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping", "mount", "umount", "dd"]);
if (skip) console.warn(`skipping fatal-error test: ${skip}`);

function ping(c: Client, target: string): boolean {
  return sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "2", "-i", "0.2", "-W", "2", target], { allowFail: true }).includes("2 received");
}

function rxBytes(c: Client): number {
  return Number(c.ns.exec(["wg", "show", c.wgIf, "transfer"]).trim().split(/\s+/)[1]);
}

describe.skipIf(skip !== undefined)("fatal error with wireguard-go clients", () => {
  let topo: Topology;
  let dataDir: string;
  let mounted = false;

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 2);
    for (const c of topo.clients) await topo.configureClient(c);
    dataDir = join(topo.dir, "data");
    mkdirSync(dataDir, { recursive: true });
    sh(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dataDir]);
    mounted = true;
    await topo.startGateway();
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
    if (mounted) sh(["umount", dataDir], { allowFail: true });
  });

  test("a fatal error says goodbye to every connected client, then exits 1", async () => {
    const [a, b] = topo.clients as [Client, Client];
    expect(ping(a, topo.gwTunnelIp)).toBe(true);
    const before = rxBytes(a);
    sh(["dd", "if=/dev/zero", `of=${join(dataDir, "fill")}`, "bs=1M"], { allowFail: true }); // until the disk is full
    // A new connection: its audit row cannot be written, inside an event-loop turn.
    ping(b, topo.gwTunnelIp);
    const code = await Promise.race([topo.gateway!.exited, Bun.sleep(10_000).then(() => "still running")]);
    expect(code).toBe(1);
    await waitFor("the shutdown log", () => topo.gatewayLog.includes('"msg":"gateway down"'), 5_000);
    const fatal = topo.gatewayLog.split("\n").find((l) => l.includes('"msg":"fatal error: saying goodbye to every peer and shutting down"'))!;
    expect(JSON.parse(fatal)).toMatchObject({ level: "error", target: "gateway" });
    expect(JSON.parse(fatal).err).toMatch(/full|SQLITE_FULL/i);
    expect(topo.gatewayLog).toMatch(/"msg":"gateway down","goodbyes_sent":[1-9]/);
    // wireguard-go drops the goodbye but counts it: 16 B header + 48 B control packet + 16 B tag.
    expect(rxBytes(a) - before).toBe(80);
  }, 40_000);
});
