// Issue 11 item 4: a gateway with 10 000 config file peers and 10 000 store peers (added as the
// admin API stores them) starts, and a wireguard-go client among them gets through. No time
// limits here (a shared CI box is no stopwatch): the start time, CPU and RSS are printed, and
// bench/peers-at-scale.ts reports them properly.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { idlePeerSections, seedStorePeers } from "../bench/peers-at-scale.ts";
import { cpuSeconds, rssMb } from "../bench/support.ts";
import { sh, skipReason, uniqueTag } from "./support/netns.ts";
import { Topology } from "./support/topology.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping peers-at-scale test: ${skip}`);

const IDLE = 10_000;

describe.skipIf(skip !== undefined)("10 000 config peers + 10 000 store peers", () => {
  let topo: Topology;
  let readyMs = 0;

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    await topo.configureClient(topo.clients[0]!);
    seedStorePeers(join(topo.dir, "data"), IDLE);
    const t0 = performance.now();
    await topo.startGateway({}, 1, { sections: idlePeerSections(IDLE), readyTimeoutMs: 180_000 });
    readyMs = performance.now() - t0;
    const pid = topo.gateway!.pid;
    console.log(`peers-at-scale: ${IDLE} file + ${IDLE} store peers ready in ${(readyMs / 1000).toFixed(2)} s (${cpuSeconds(pid).toFixed(2)} CPU-s), RSS ${rssMb(pid).toFixed(0)} MB`);
  }, 240_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test("every peer is in the data plane, and the wireguard-go client among them pings the gateway and the LAN", () => {
    const up = JSON.parse(topo.gatewayLog.split("\n").find((l) => l.includes('"msg":"gateway up"'))!);
    expect(up.peers).toBe(IDLE + 1);
    expect(up.store_peers).toBe(IDLE);
    expect(up.store_peers_skipped).toBeUndefined();
    const c = topo.clients[0]!;
    for (const target of [topo.gwTunnelIp, topo.lanIp]) {
      const out = sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "3", target], { allowFail: true });
      expect(out).toContain("3 received");
    }
    const conns = topo.connections();
    expect(conns).toHaveLength(2 * IDLE + 1);
    const mine = conns.find((x) => x.public_key === c.publicKey)!;
    expect(mine.rx_bytes).toBeGreaterThan(0);
  }, 60_000);

  test("the idle peers' host routes are in the TUN's table (one batch, not 20 000 spawns)", () => {
    const routes = topo.gw.exec(["ip", "route", "show", "dev", `ggt${topo.tag}`]);
    expect(routes.split("\n").filter((l) => l.startsWith("10.100.")).length).toBe(2 * IDLE);
    expect(topo.gatewayLog).toContain('"msg":"routes added","count":');
  });
});
