import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store, type GatewayStore } from "../store/index.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";
import { readGatewayLive } from "./gateway-presence.ts";
import { PresencePublisher } from "./presence-publisher.ts";

const REG = { gid: "gw-1", name: "edge", publicKey: "PK=", version: "1.0.0" };
const LIVE = { connections: [{ cid: 1, peer: "laptop", endpoint: null, rx_bytes: 1, tx_bytes: 2, last_handshake: null }], problems: [] };

test("a beat publishes the count and live state, and registers again when the row is gone", async () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-presence-")));
  const p = new PresencePublisher({ store: store.gateways, registration: REG, snapshot: () => ({ connectedPeers: 1, live: LIVE }), where: "sqlite" });
  expect(await p.publishOnce(1000)).toBe(true); // no row yet: registered, then published
  const [row] = store.gateways.list();
  expect(row).toMatchObject({ gid: "gw-1", lastSeen: 1000, connectedPeers: 1 });
  expect(readGatewayLive(row!.live)).toEqual({ ...LIVE, unreadable: null });
  store.sqlite.exec("DELETE FROM gateways");
  expect(await p.publishOnce(2000)).toBe(true);
  expect(store.gateways.list()[0]).toMatchObject({ gid: "gw-1", startedAt: 2000, lastSeen: 2000, connectedPeers: 1 });
  store.close();
});

test("a failing store is logged once per outage and never throws", async () => {
  let down = true;
  const rows: unknown[] = [];
  const flaky: GatewayStore = {
    register: async () => void rows.push("registered"),
    heartbeat: async () => true,
    publish: async () => {
      if (down) throw new Error("connection refused");
      return true;
    },
    list: async () => [],
  };
  const lines: LogLine[] = [];
  const p = new PresencePublisher({ store: flaky, registration: REG, snapshot: () => ({ connectedPeers: 0, live: { connections: [], problems: [] } }), where: "postgres", log: new Logger(parseLogFilter("info"), memorySink(lines)).target("cluster") });
  expect(await p.publishOnce(1000)).toBe(false);
  expect(await p.publishOnce(2000)).toBe(false);
  down = false;
  expect(await p.publishOnce(3000)).toBe(true);
  expect(lines.map((l) => [l.level, l.msg, l.outage_ms])).toEqual([
    ["warn", "gateway presence not published: other admins will see this gateway as stale", undefined],
    ["info", "gateway presence published again", 2000],
  ]);
});
