import { describe, expect, test } from "bun:test";
import { buildIcmpEcho } from "../ip/build.ts";
import { CaptureError, Captures, MAX_CAPTURES, type PacketCapture } from "./capture.ts";

const ping = buildIcmpEcho({ src: "10.99.0.2", dst: "10.202.0.2", id: 7, seq: 1 }); // 28 bytes
const limits = (p: Partial<{ maxPackets: number; maxBytes: number; maxSeconds: number }> = {}) => ({ maxPackets: 1000, maxBytes: 1 << 20, maxSeconds: 60, ...p });

function world() {
  const stopped: PacketCapture[] = [];
  return { caps: new Captures((c) => stopped.push(c)), stopped };
}

describe("packet capture limits", () => {
  test("stops by itself at max_packets, keeping exactly that many, and reports it once", () => {
    const { caps, stopped } = world();
    caps.start(5, limits({ maxPackets: 3 }), 0, "admin:ops");
    for (let i = 0; i < 10; i++) caps.tap(5, ping, ping.length, i);
    expect(caps.active.size).toBe(0);
    expect(stopped.map((c) => [c.stopReason, c.packets, c.stoppedBy])).toEqual([["max_packets", 3, "gateway"]]);
    expect(caps.get(5)!.pcap().length).toBe(24 + 3 * (16 + ping.length));
  });

  test("max_bytes bounds the file, headers included: a packet that does not fit ends it and is not kept", () => {
    const { caps, stopped } = world();
    const per = 16 + ping.length;
    caps.start(5, limits({ maxBytes: 24 + 2 * per + per - 1 }), 0, "a");
    for (let i = 0; i < 10; i++) caps.tap(5, ping, ping.length, i);
    expect(stopped[0]).toMatchObject({ stopReason: "max_bytes", packets: 2 });
    expect(caps.get(5)!.pcap().length).toBe(24 + 2 * per);
  });

  test("max_seconds ends a capture at the next packet or at the shell's expire() when the link is silent", () => {
    const { caps, stopped } = world();
    caps.start(5, limits({ maxSeconds: 2 }), 1000, "a");
    caps.start(6, limits({ maxSeconds: 5 }), 1000, "a");
    caps.tap(5, ping, ping.length, 2999);
    caps.tap(5, ping, ping.length, 3000);
    expect(stopped.map((c) => [c.cid, c.stopReason, c.packets])).toEqual([[5, "max_seconds", 1]]);
    expect(caps.expire(4000)).toBe(6000); // the next deadline for the shell's timer
    expect(caps.expire(6000)).toBeUndefined();
    expect(stopped.map((c) => c.cid)).toEqual([5, 6]);
  });

  test("only captured connections are copied; an operator stop names its actor", () => {
    const { caps, stopped } = world();
    caps.start(5, limits(), 0, "a");
    caps.tap(9, ping, ping.length, 1);
    caps.tap(5, ping, ping.length, 1);
    expect(caps.get(9)).toBeUndefined();
    caps.stop(5, "stopped", 2, "admin:ops");
    caps.tap(5, ping, ping.length, 3);
    expect(stopped.map((c) => [c.stopReason, c.stoppedBy, c.packets])).toEqual([["stopped", "admin:ops", 1]]);
    expect(caps.get(5)!.status()).toMatchObject({ state: "stopped", packets: 1, stop_reason: "stopped" });
  });

  test("at most MAX_CAPTURES are kept: the oldest finished one makes room, running ones never do", () => {
    const { caps } = world();
    for (let cid = 1; cid <= MAX_CAPTURES; cid++) caps.start(cid, limits(), cid, "a");
    expect(() => caps.start(99, limits(), 10, "a")).toThrow(CaptureError);
    expect(() => caps.start(1, limits(), 10, "a")).toThrow("already running on cid 1");
    caps.stop(2, "stopped", 11);
    caps.stop(3, "stopped", 12);
    caps.start(99, limits(), 13, "a");
    expect(caps.get(2)).toBeUndefined();
    expect(caps.get(3)).toBeDefined();
    // A finished capture of the same connection is replaced by its new one.
    caps.start(3, limits(), 14, "a");
    expect(caps.get(3)!.running).toBe(true);
  });
});
