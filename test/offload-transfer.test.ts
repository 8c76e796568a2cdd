// 1 GB each way through the gateway with its offloads on (the default): a wireguard-go client
// uploads to a LAN host (datagrams → decrypted segments merged into TUN super-packet writes) and
// downloads from it (TUN super-packet reads → segmented → encrypted → sendmmsg/GSO). Both arrive
// intact (sha256 on each end), and the gateway's metrics show the offload path was the one taken.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { Topology } from "./support/topology.ts";
import { skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "wg", "wireguard-go"]);
if (skip) console.warn(`skipping the 1 GB offload transfer test: ${skip}`);

const SUPPORT = join(import.meta.dir, "support");
const GB = 1024 * 1024 * 1024;

function collect(p: Subprocess<"ignore", "pipe", "pipe">): { all: string[] } {
  const out = { all: [] as string[] };
  void (async () => {
    let buf = "";
    for await (const chunk of p.stdout) {
      buf += new TextDecoder().decode(chunk);
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        out.all.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  })();
  return out;
}

function metric(topo: Topology, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, "m").exec(topo.api("/metrics").body);
  return m ? Number(m[1]) : 0;
}

describe.skipIf(skip !== undefined)("1 GB TCP through the gateway with offloads on", () => {
  let topo: Topology;

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    await topo.configureClient(topo.clients[0]!);
    await topo.startGateway();
  });

  afterAll(async () => {
    if (topo?.gateway && topo.gateway.exitCode !== null && topo.gateway.exitCode !== 0) console.error(`glassgate exited ${topo.gateway.exitCode}; its log:\n${topo.gatewayLog}`);
    await topo?.destroy();
  });

  async function transfer(from: "client" | "lan", port: number): Promise<{ sent: { bytes: number; sha256: string }; got: { bytes: number; sha256: string } }> {
    const c = topo.clients[0]!;
    const [recvNs, sendNs, host] = from === "client" ? [topo.lan, c.ns, topo.lanIp] : [c.ns, topo.lan, c.tunnelIp];
    const recv = recvNs.start(["bun", join(SUPPORT, "tcp-transfer.ts"), "recv", String(port)]);
    const recvOut = collect(recv);
    await waitFor("the receiver to listen", () => recvOut.all.some((l) => l.includes("listening")), 20_000);
    const send = sendNs.start(["bun", join(SUPPORT, "tcp-transfer.ts"), "send", host, String(port), String(GB)]);
    const sendOut = collect(send);
    try {
      const sent = JSON.parse(await waitFor("the sender's checksum", () => sendOut.all.find((l) => l.includes("sha256")), 240_000, 200));
      const got = JSON.parse(await waitFor("the receiver's checksum", () => recvOut.all.find((l) => l.includes("sha256")), 60_000, 200));
      return { sent, got };
    } finally {
      if (send.exitCode === null) send.kill("SIGKILL");
      if (recv.exitCode === null) recv.kill("SIGKILL");
    }
  }

  test("client → LAN: 1 GB arrives intact, written to the TUN as merged super-packets", async () => {
    const { sent, got } = await transfer("client", 5301);
    expect(sent.bytes).toBe(GB);
    expect(got).toEqual(sent);
    expect(metric(topo, "glassgate_tun_coalesced_segments_total")).toBeGreaterThan(metric(topo, "glassgate_tun_coalesced_writes_total"));
  }, 300_000);

  test("LAN → client: 1 GB arrives intact, read from the TUN as super-packets and segmented", async () => {
    const { sent, got } = await transfer("lan", 5302);
    expect(sent.bytes).toBe(GB);
    expect(got).toEqual(sent);
    expect(metric(topo, "glassgate_tun_super_packets_total")).toBeGreaterThan(0);
    expect(metric(topo, "glassgate_tun_segments_total")).toBeGreaterThan(metric(topo, "glassgate_tun_super_packets_total"));
  }, 300_000);
});
