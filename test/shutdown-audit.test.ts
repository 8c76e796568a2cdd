// Stopping the gateway always finishes its records: "gateway down" is logged, every open
// connection gets its connection.closed audit row and its last traffic sample — with Sentry on,
// on SIGINT, every time.
// (One stop in five used to end at the CLI's 2-s deadline first: see standalone/run.ts shutdown.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { encodeKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { CLIENT_PORT, Topology, type Client } from "./support/topology.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping shutdown-audit test: ${skip}`);

const STOPS = Number(process.env.STOPS ?? 10);
const SENTRY_PORT = 9411;
/** Each Sentry request answered after this long: an ingest that is slow or out of reach. */
const SENTRY_DELAY_MS = 30_000;

function ping(c: Client, target: string): boolean {
  return sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "1", "-W", "3", target], { allowFail: true }).includes("1 received");
}

describe.skipIf(skip !== undefined)("stopping a gateway with 3 wireguard-go clients and Sentry on", () => {
  let topo: Topology;

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 3);
    for (const c of topo.clients) await topo.configureClient(c);
    const sink = topo.gw.start(["bun", join(import.meta.dir, "support", "sentry-sink.ts"), String(SENTRY_PORT), String(SENTRY_DELAY_MS)]);
    const reader = sink.stdout.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("ready");
    reader.releaseLock();
    // An error for Sentry to be delivering when the stop comes: the gateway reports at start that
    // its tunnel Address overlaps a route the host already has (here: a veth inside its namespace).
    topo.gw.exec(["ip", "link", "add", `ggd${topo.tag}`, "type", "veth", "peer", "name", `ggp${topo.tag}`]);
    topo.gw.exec(["ip", "link", "set", `ggd${topo.tag}`, "up"]);
    topo.gw.exec(["ip", "route", "add", `10.99.${topo.net}.128/30`, "dev", `ggd${topo.tag}`]); // no client lives there
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test(`each of ${STOPS} SIGINT stops logs "gateway down" and writes a connection.closed row and a last traffic sample per connection`, async () => {
    const gwKey = encodeKey(publicKeyOf(topo.gwKey));
    const db = join(topo.dir, "data", "glassgate.db");
    for (let i = 0; i < STOPS; i++) {
      // A fresh session on each client (the last gateway's is gone), so all 3 connect at once.
      for (const c of topo.clients) {
        c.ns.exec(["wg", "set", c.wgIf, "peer", gwKey, "remove"]);
        c.ns.exec(["wg", "set", c.wgIf, "listen-port", String(CLIENT_PORT), "peer", gwKey, "endpoint", `${topo.gwUnderlayFor(c)}:52625`, "allowed-ips", `10.99.${topo.net}.0/24,10.202.${topo.net}.0/24`]);
      }
      const from = topo.gatewayLog.length;
      await topo.startGateway({ SENTRY_DSN: `http://public@127.0.0.1:${SENTRY_PORT}/1`, GLASSGATE_LOG: "info" });
      for (const c of topo.clients) await waitFor(`client ${c.index} to reach the gateway (stop ${i + 1})`, () => ping(c, topo.gwTunnelIp), 15_000);
      await waitFor("3 connections", () => topo.connections().filter((x) => x.handshakes.completed > 0).length === 3);
      const p = topo.gateway!;
      p.kill("SIGINT");
      const code = await Promise.race([p.exited, Bun.sleep(10_000).then(() => "still running")]);
      expect(code).toBe(0);
      const run = topo.gatewayLog.slice(from);
      expect({ stop: i + 1, gatewayDown: run.includes('"msg":"gateway down"') }).toEqual({ stop: i + 1, gatewayDown: true });
      const d = new Database(db, { readonly: true });
      const closed = (d.query("SELECT count(*) AS n FROM audit_events WHERE action = 'connection.closed' AND reason = 'gateway shutdown'").get() as { n: number }).n;
      // The traffic since the last sample is kept too (each run is shorter than the 60-s sampling).
      const sampled = (d.query("SELECT count(DISTINCT public_key) AS n FROM traffic_samples").get() as { n: number }).n;
      d.close();
      expect({ stop: i + 1, closed, sampled }).toEqual({ stop: i + 1, closed: 3 * (i + 1), sampled: 3 });
    }
  }, 300_000);
});
