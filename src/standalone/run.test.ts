import { expect, test } from "bun:test";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";
import type { Tunnel } from "../tunnel/index.ts";
import { logEvent } from "./run.ts";

test("handshake lines give rtt_ms to 0.1 ms, not a long float", () => {
  const lines: LogLine[] = [];
  const log = new Logger(parseLogFilter("info"), memorySink(lines)).target("tunnel");
  const tunnel = { connection: () => ({ peer: { endpoint: { address: "192.0.2.7", port: 51820 } } }) } as unknown as Tunnel;
  const session = 0x123456_01;
  logEvent(log, { type: "handshake_completed", cid: 7, session, role: "initiator", remote: { address: "192.0.2.7", port: 51820 }, rttMs: 48.98876953125 }, tunnel);
  logEvent(log, { type: "session_confirmed", cid: 7, session, rttMs: 3.04999 }, tunnel);
  expect(lines.map((l) => l.rtt_ms)).toEqual([49, 3]);
  logEvent(log, { type: "session_confirmed", cid: 7, session, rttMs: 12.3456 }, tunnel);
  expect(lines[2]!.rtt_ms).toBe(12.3);
});

test("a takeover's source is GLASSGATE_ENDPOINT's address when it is one (IPv4 or [IPv6]), never a name", async () => {
  const { publicEndpointAddress } = await import("./run.ts");
  expect(publicEndpointAddress("203.0.113.10:52625")).toBe("203.0.113.10");
  expect(publicEndpointAddress("[2001:db8::10]:52625")).toBe("2001:db8::10");
  expect(publicEndpointAddress("vpn.example.com:52625")).toBeUndefined();
  expect(publicEndpointAddress(undefined)).toBeUndefined();
});
