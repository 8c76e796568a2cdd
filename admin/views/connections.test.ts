import { describe, expect, test } from "bun:test";
import type { LogLine } from "../../src/telemetry/log.ts";
import type { ConnectionView } from "../../src/telemetry/view.ts";
import { connectionLive } from "./connections.ts";

const NOW = Date.parse("2026-11-29T12:00:00Z");
const c: ConnectionView = {
  cid: 7, public_key: `KEY7${"A".repeat(40)}=`, endpoint: "192.0.2.7:51820", sessions: [], last_handshake: null, rx_bytes: 0, tx_bytes: 0,
  rx_packets: 0, tx_packets: 0, handshakes: { initiated: 0, completed: 0, failed: 0 }, allowed_ips: ["10.99.0.2/32"], drops: {}, state: "connected", state_since: "2026-11-29T11:00:00.000Z",
};
const line = (msg: string, target: string, level: LogLine["level"] = "info", fields: Record<string, unknown> = {}): LogLine => ({ ts: "2026-11-29T11:59:00.000Z", level, target, msg, cid: 7, ...fields });
const timelineOf = async (logs: LogLine[]) => {
  const out = String(await connectionLive({ c, name: null, peerHref: null, logs, traffic: [], sampleSeconds: 60, now: NOW }));
  return out.slice(out.indexOf("<h2>Timeline</h2>"), out.indexOf("<h2>Recent logs</h2>"));
};

describe("connection page timeline", () => {
  test("shows the connection's named problems appearing (by their title) and clearing", async () => {
    const tl = await timelineOf([
      line("Packets from 10.99.0.77, outside the peer's AllowedIPs", "problems", "warn", { kind: "allowed_ips" }),
      line("problem cleared", "problems", "info", { kind: "allowed_ips", title: "Packets from 10.99.0.77, outside the peer's AllowedIPs" }),
    ]);
    expect(tl).toContain("Packets from 10.99.0.77, outside the peer&#39;s AllowedIPs");
    expect(tl).toContain("problem cleared");
    expect(tl).not.toContain("No handshakes or session events");
  });

  test("a problem's line in the Timeline says what and when; its cause and fix stay in the banner", async () => {
    const tl = await timelineOf([line("Never connected since it was created", "problems", "warn", { kind: "never_connected", likely_cause: "LONG CAUSE", fix: "LONG FIX", count: 1 })]);
    expect(tl).toContain("Never connected since it was created");
    expect(tl).toContain("kind=never_connected");
    expect(tl).not.toContain("LONG CAUSE");
    expect(tl).not.toContain("LONG FIX");
  });

  test("keeps handshakes (whatever their case) and leaves other chatter to Recent logs", async () => {
    const tl = await timelineOf([line("Handshake completed", "tunnel"), line("packet forwarded", "tunnel")]);
    expect(tl).toContain("Handshake completed");
    expect(tl).not.toContain("packet forwarded");
  });
});

describe("connection page in portal mode", () => {
  const portal = {
    client_id: "client-1", name: "laptop", ipv4: "100.64.0.2", ipv6: "fd00:2021:1111::2",
    resources: [{ rid: "res-lab", expires_at: "2026-11-30T12:00:00.000Z" }],
    timeline: [
      { at: "2026-11-29T11:58:00.000Z", event: "authorize_flow", rid: "res-lab" },
      { at: "2026-11-29T11:58:01.000Z", event: "ice_candidates", detail: "2 candidate(s)" },
      { at: "2026-11-29T11:59:00.000Z", event: "reject_access", rid: "res-lab" },
    ],
  };
  test("names the portal client and its resources instead of a config file peer", async () => {
    const out = String(await connectionLive({ c, name: null, peerHref: null, logs: [], traffic: [], sampleSeconds: 60, now: NOW, portal }));
    expect(out).toContain('portal client <span class="mono" data-testid="portal-client">client-1</span> · laptop');
    expect(out).toContain("res-lab (until 2026-11-30T12:00:00.000Z)");
    expect(out).not.toContain("config file peer");
  });
  test("lists each portal message that touched the client, newest first", async () => {
    const out = String(await connectionLive({ c, name: null, peerHref: null, logs: [], traffic: [], sampleSeconds: 60, now: NOW, portal }));
    const table = out.slice(out.indexOf('data-testid="portal-timeline"'));
    const order = ["reject_access", "ice_candidates", "authorize_flow"].map((e) => table.indexOf(`<td class="mono">${e}</td>`));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(table).toContain("2 candidate(s)");
  });
});
