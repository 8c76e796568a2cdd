import { expect, test } from "bun:test";
import { goodbyePacket } from "../../src/tunnel/index.ts";
import { ASSIGNED_IPS_EVENT, DOMAIN_STATUS_EVENT, controlPacket, isControlPacket, readControl } from "./p2p-control.ts";

test("the gateway's 48-byte goodbye reads as a goodbye", () => {
  const p = goodbyePacket();
  expect(isControlPacket(p, 0, p.length)).toBe(true);
  expect(readControl(p, 0, p.length)).toEqual({ type: "goodbye" });
});

test("AssignedIps and DomainStatus round-trip, with the IPv6 payload length covering header and body", () => {
  const body = { resource: "r1", domain: "app.example", proxy_ips: ["100.96.0.1"] };
  const p = controlPacket(ASSIGNED_IPS_EVENT, body);
  expect((p[4]! << 8) | p[5]!).toBe(p.length - 40);
  expect(Array.from(p.subarray(40, 48))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  // At an offset inside a bigger buffer, as a TUN slot would hold it.
  const slot = new Uint8Array(p.length + 20);
  slot.set(p, 20);
  expect(isControlPacket(slot, 20, p.length)).toBe(true);
  expect(readControl(slot, 20, p.length)).toEqual({ type: "assigned_ips", body });
  const s = controlPacket(DOMAIN_STATUS_EVENT, { resource: "r1", domain: "app.example", status: "active" });
  expect(readControl(s, 0, s.length)).toEqual({ type: "domain_status", body: { resource: "r1", domain: "app.example", status: "active" } });
});

test("ordinary IPv6 packets and damaged control packets are not taken for control events", () => {
  const p = controlPacket(ASSIGNED_IPS_EVENT, { resource: "r", domain: "d", proxy_ips: [] });
  const udp = p.slice();
  udp[6] = 17;
  expect(isControlPacket(udp, 0, udp.length)).toBe(false);
  const src = p.slice();
  src[8] = 0xfd; // a real source address
  expect(isControlPacket(src, 0, src.length)).toBe(false);
  expect(isControlPacket(p, 0, p.length - 1)).toBe(false); // the length field disagrees
  const bad = controlPacket(ASSIGNED_IPS_EVENT);
  expect(readControl(bad, 0, bad.length)).toMatchObject({ type: "unknown", event: 0 });
  const unknown = controlPacket(9, {});
  expect(readControl(unknown, 0, unknown.length)).toMatchObject({ type: "unknown", event: 9, reason: "unknown event type" });
});
