import { describe, expect, test } from "bun:test";
import { parseStun, StunClass, StunMessage, StunMethod, StunWriter } from "./stun.ts";
import { CHANNEL_DATA_HEADER, channelDataLength, TurnClient, type TurnClientOptions, type TurnEvent } from "./turn-client.ts";
import { TestRelay, type TestRelayOptions } from "../../test/support/turn-relay.ts";
import { turnRestCredentials } from "./turn-credentials.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";
import type { Endpoint } from "../wire/index.ts";

const RELAY: Endpoint = { address: "192.0.2.10", port: 3478 };
const RELAY_V6: Endpoint = { address: "2001:db8::10", port: 3478 };
const ME: Endpoint = { address: "198.51.100.7", port: 40000 }; // how the relay sees us (srflx)
const PEER: Endpoint = { address: "203.0.113.5", port: 51820 };
const PEER_V6: Endpoint = { address: "2001:db8::5", port: 51820 };
const S = 1000;

/** A seeded byte source, so transaction ids (and so every run) are the same each time. */
function seeded(seed = 1): (b: Uint8Array) => void {
  let s = seed >>> 0 || 1;
  return (b) => {
    for (let i = 0; i < b.length; i++) {
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      b[i] = s & 0xff;
    }
  };
}

/** A client, a relay and a clock; what the client sends reaches the relay unless `lose` says no. */
class World {
  now = 0;
  readonly relay: TestRelay;
  readonly client: TurnClient;
  readonly events: TurnEvent[] = [];
  readonly sent: { at: number; msg: StunMessage | undefined; data: Uint8Array }[] = [];
  readonly logs: LogLine[] = [];
  lose: (data: Uint8Array, toRelay: boolean) => boolean = () => false;
  /** How the relay sees us: a NAT that rebinds changes it. */
  mapped: Endpoint = ME;
  duplicate: () => boolean = () => false;

  constructor(relay: Partial<TestRelayOptions> = {}, client: Partial<TurnClientOptions> = {}) {
    this.relay = new TestRelay({ address: RELAY, username: "alice", password: "secret", relayV4: { address: "192.0.2.10", port: 50000 }, relayV6: { address: "2001:db8::10", port: 50000 }, ...relay });
    const log = new Logger(parseLogFilter("debug"), memorySink(this.logs)).target("turn");
    this.client = new TurnClient({ servers: [RELAY], username: "alice", password: "secret", random: seeded(), log, ...client }, this.now);
    this.pump();
  }

  /** Delivers everything in flight (both ways) until quiet. */
  pump(): void {
    for (let t = this.client.pollTransmit(); t; t = this.client.pollTransmit()) {
      const msg = parseStun(t.data);
      this.sent.push({ at: this.now, msg: msg instanceof StunMessage ? msg : undefined, data: t.data });
      if (this.lose(t.data, true) || !sameAddr(t.to, this.relay.opts.address)) continue;
      const answer = this.relay.answer(t.data, this.mapped);
      if (answer && !this.lose(answer, false)) {
        this.client.handleInput(answer, answer.length, t.to, this.now);
        if (this.duplicate()) this.client.handleInput(answer, answer.length, t.to, this.now);
      }
    }
    for (let e = this.client.pollEvent(); e; e = this.client.pollEvent()) this.events.push(e);
  }

  /** Runs the clock to `until`, firing every timer the client asks for on the way. */
  runUntil(until: number): void {
    this.pump();
    for (;;) {
      const t = this.client.pollTimeout();
      if (t === undefined || t > until) break;
      this.now = Math.max(this.now, t);
      this.client.handleTimeout(this.now);
      this.pump();
    }
    this.now = until;
  }

  requests(method: number, since = -Infinity) {
    return this.sent.filter((s) => s.msg && s.msg.method === method && s.msg.cls === StunClass.request && s.at >= since);
  }

  ofType<T extends TurnEvent["type"]>(type: T): Extract<TurnEvent, { type: T }>[] {
    return this.events.filter((e) => e.type === type) as Extract<TurnEvent, { type: T }>[];
  }
}

function sameAddr(a: Endpoint, b: Endpoint) {
  return a.address === b.address && a.port === b.port;
}

describe("allocating", () => {
  test("binding → 401 → authenticated Allocate gives relayed addresses of both families and the srflx address", () => {
    const w = new World();
    expect(w.client.state).toBe("allocated");
    const allocs = w.requests(StunMethod.allocate);
    expect(allocs.length).toBe(2); // unauthenticated, then with realm and nonce
    expect(allocs[0]!.msg!.integrityAt).toBe(-1);
    const authed = allocs[1]!.msg!;
    expect([authed.username, authed.realm, authed.nonce]).toEqual(["alice", "example.org", "nonce-1"]);
    expect(authed.requestedTransport).toBe(17);
    expect(authed.additionalAddressFamily).toBe(2);
    expect(authed.software).toBe("glassgate");
    expect(w.ofType("srflx_candidate")).toEqual([{ type: "srflx_candidate", address: ME }]);
    expect(w.ofType("allocated")).toEqual([{ type: "allocated", relays: [{ address: "192.0.2.10", port: 50000 }, { address: "2001:db8::10", port: 50000 }], srflx: ME, lifetimeS: 600 }]);
    expect(w.logs.some((l) => l.msg === "allocated" && l.target === "turn")).toBe(true);
  });

  test("a stale nonce (438) is followed by a retry with the new nonce", () => {
    const w = new World();
    w.relay.staleNonceNext = true;
    w.runUntil(301 * S); // the refresh at half the lifetime meets the stale nonce
    const refreshes = w.requests(StunMethod.refresh);
    expect(refreshes.map((r) => r.msg!.nonce)).toEqual(["nonce-1", "nonce-2"]);
    expect(w.client.state).toBe("allocated");
    expect(w.ofType("failed")).toEqual([]);
  });

  test("a wrong password ends in a clear auth failure, counted by reason", () => {
    const w = new World({}, { password: "wrong" });
    expect(w.client.state).toBe("failed");
    const [failed] = w.ofType("failed");
    expect(failed!.reason).toBe("auth");
    expect(failed!.detail).toContain("refused the credentials for alice");
    expect(w.client.failures.get("auth")).toBe(1);
    expect(w.requests(StunMethod.allocate).length).toBe(2); // no hammering with the same wrong key
  });

  test("a realm other than the one configured is refused", () => {
    const w = new World({ realm: "evil.example" }, { realm: "firezone" });
    expect(w.ofType("failed")[0]!.reason).toBe("realm_mismatch");
  });

  test("a relay that refuses the dual-stack allocation (440) is asked again for IPv4 only", () => {
    const w = new World({ refuseDual: true });
    expect(w.client.state).toBe("allocated");
    const last = w.requests(StunMethod.allocate).at(-1)!.msg!;
    expect(last.additionalAddressFamily).toBeUndefined();
    expect(w.ofType("allocated")[0]!.relays).toEqual([{ address: "192.0.2.10", port: 50000 }]);
  });

  test.each([
    [420, "protocol", "does not understand 0x8000 in allocate"],
    [442, "unsupported_transport", "442"],
    [486, "quota", "486"],
    [508, "insufficient_capacity", "508"],
    [403, "rejected", "403"],
  ] as const)("an Allocate refused with %i fails as %s, naming why", (code, reason, detail) => {
    const w = new World();
    w.client.restart(w.now);
    w.relay.allocated = false;
    w.relay.refuseAllocate = code;
    w.pump();
    const [failed] = w.ofType("failed");
    expect(failed!.reason).toBe(reason);
    expect(failed!.detail).toContain(detail);
    expect(w.client.failures.get(reason)).toBe(1);
    expect(w.client.pollTimeout()).toBeUndefined(); // nothing left to retry
  });

  test("a NAT that rebinds shows as a new srflx candidate at the next keepalive, the old one not invalidated", () => {
    const w = new World();
    w.mapped = { address: "198.51.100.7", port: 40001 };
    w.runUntil(25 * S);
    expect(w.ofType("srflx_candidate").map((e) => e.address.port)).toEqual([40000, 40001]);
    expect(w.ofType("candidates_invalidated")).toEqual([]);
    expect(w.client.srflx).toEqual(w.mapped);
  });

  test("with a second relay address the first to answer is used", () => {
    const w = new World({}, { servers: [RELAY_V6, RELAY] });
    expect(w.client.server).toEqual(RELAY);
    expect(w.client.state).toBe("allocated");
  });

  test("TURN REST credentials (coturn use-auth-secret) are expiry:user and base64 HMAC-SHA1", () => {
    // Reference value computed with: printf '%s' 1700000000:gw | openssl dgst -sha1 -hmac s3cret -binary | base64
    expect(turnRestCredentials("s3cret", "gw", 1_700_000_000)).toEqual({ username: "1700000000:gw", password: "2V2JxFYl1WcxcGDIbdnyJ5KciZo=" });
  });
});

describe("timers", () => {
  test("a silent relay gets the binding at 0, 1, 2.5, 4.75 s and is given up at 8.125 s as unreachable", () => {
    const w = new World();
    w.relay.silent = true;
    w.client.restart(w.now);
    w.runUntil(20 * S);
    const sends = w.requests(StunMethod.binding).map((r) => r.at);
    expect(sends).toEqual([0, 0, 1000, 2500, 4750]);
    const [failed] = w.ofType("failed");
    expect(failed!.reason).toBe("no_response");
    expect(failed!.detail).toContain("is UDP to the relay blocked?");
    expect(w.client.failures.get("no_response")).toBe(1);
  });

  test("the allocation is refreshed at half its lifetime, again and again, and never lapses", () => {
    const w = new World();
    w.runUntil(3600 * S);
    const at = w.requests(StunMethod.refresh).map((r) => r.at / S);
    expect(at).toEqual([300, 600, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300, 3600]);
    expect(w.ofType("candidates_invalidated")).toEqual([]);
  });

  test("a binding request keeps the relay's NAT mapping open every 25 s, unless relayed data already does", () => {
    const w = new World();
    w.runUntil(100 * S);
    expect(w.requests(StunMethod.binding, 1).map((r) => r.at / S)).toEqual([25, 50, 75, 100]);
    const c = w.client.bindChannel(PEER, w.now)!;
    w.pump();
    const buf = new Uint8Array(64);
    for (let t = 101; t <= 200; t += 10) {
      w.runUntil(t * S);
      expect(w.client.encapsulate(buf, 10, c, w.now)).toBe(14);
    }
    expect(w.requests(StunMethod.binding, 101 * S)).toEqual([]);
  });

  test("a relay that stops answering the refresh ends in a timeout failure 8 s later, candidates invalidated", () => {
    const w = new World();
    w.runUntil(299 * S);
    w.relay.silent = true;
    w.runUntil(320 * S);
    expect(w.requests(StunMethod.refresh).map((r) => r.at / S)).toEqual([300, 301, 302.5, 304.75]);
    expect(w.ofType("candidates_invalidated")[0]!.relays.length).toBe(2);
    const [failed] = w.ofType("failed");
    expect(failed!.reason).toBe("timeout");
    expect(w.now).toBe(320 * S);
  });

  test("a refresh the relay no longer knows (437) invalidates the relayed candidates and allocates anew", () => {
    const w = new World();
    w.relay.allocated = false; // the relay lost it (restarted); a new Allocate must succeed
    w.runUntil(301 * S);
    expect(w.ofType("candidates_invalidated").map((e) => e.reason)).toEqual(["allocation mismatch (437 Allocation Mismatch)"]);
    expect(w.ofType("allocated").length).toBe(2);
    expect(w.client.state).toBe("allocated");
  });

  test("a refused refresh (508) invalidates the relayed candidates and allocates anew", () => {
    const w = new World();
    w.relay.refuseRefresh = 508;
    w.runUntil(301 * S);
    expect(w.ofType("candidates_invalidated").map((e) => e.reason)).toEqual(["refresh refused: 508 Refused"]);
    // The relay still holds the old one, so the new Allocate meets 437: delete, then allocate.
    expect(w.client.state).toBe("allocated");
    expect(w.ofType("allocated").length).toBe(2);
  });

  test("an allocation whose refresh the relay ignores while the lifetime is short expires, and a new one is made", () => {
    const w = new World({ lifetimeS: 10 });
    // Answers to the refresh get lost (but the relay still answers everything else).
    w.lose = (data, toRelay) => toRelay && parseStun(data) instanceof StunMessage && (parseStun(data) as StunMessage).method === StunMethod.refresh;
    w.relay.allocated = false;
    w.runUntil(11 * S);
    expect(w.ofType("candidates_invalidated").map((e) => e.reason)).toEqual(["expired"]);
    w.lose = () => false;
    w.runUntil(12 * S);
    expect(w.ofType("allocated").length).toBe(2);
  });
});

describe("channels", () => {
  test("a channel is bound as 0x4000, data goes out on it while the binding is in flight, and comes in once bound", () => {
    const w = new World();
    w.relay.silent = true; // hold the ChannelBind's answer
    const c = w.client.bindChannel(PEER, w.now)!;
    expect(c.number).toBe(0x4000);
    const out = new Uint8Array(64);
    out.set([1, 2, 3], CHANNEL_DATA_HEADER);
    expect(w.client.encapsulate(out, 3, c, w.now)).toBe(7); // optimistic, as snownet
    expect([...out.subarray(0, 4)]).toEqual([0x40, 0x00, 0, 3]);
    const inbound = Uint8Array.of(0x40, 0x00, 0, 2, 9, 9);
    expect(w.client.decapsulate(inbound, inbound.length, RELAY, w.now)).toBeUndefined();
    expect(w.client.drops.get("channel_not_bound")).toBe(1);
    w.relay.silent = false;
    w.runUntil(1 * S); // the retransmission gets through
    expect(w.ofType("channel_bound")).toEqual([{ type: "channel_bound", peer: PEER, channel: 0x4000 }]);
    expect(w.relay.channels.get(0x4000)).toEqual(PEER);
    expect(w.client.decapsulate(inbound, inbound.length, RELAY, w.now)).toBe(c);
    expect(channelDataLength(inbound)).toBe(2);
    expect(w.client.relayedBytesReceived).toBe(2);
    expect(w.client.relayedBytesSent).toBe(3);
    expect(w.client.bindChannel(PEER, w.now)).toBe(c); // one channel per peer
    expect(w.client.bindChannel(PEER_V6, w.now)!.number).toBe(0x4001);
  });

  test("ChannelData from anyone but the relay, or on an unknown number, is not taken", () => {
    const w = new World();
    const c = w.client.bindChannel(PEER, w.now)!;
    w.pump();
    const inbound = Uint8Array.of(0x40, 0x00, 0, 0);
    expect(w.client.decapsulate(inbound, 4, PEER, w.now)).toBeUndefined();
    const other = Uint8Array.of(0x40, 0x07, 0, 0);
    expect(w.client.decapsulate(other, 4, RELAY, w.now)).toBeUndefined();
    expect(w.client.drops.get("unknown_channel")).toBe(1);
    expect(w.client.decapsulate(inbound, 4, RELAY, w.now)).toBe(c);
  });

  test("a channel that carries traffic is refreshed at 5 min; an idle one lapses at 10 min and is re-bound on use", () => {
    const w = new World();
    const busy = w.client.bindChannel(PEER, w.now)!;
    const idle = w.client.bindChannel(PEER_V6, w.now)!;
    w.pump();
    const inbound = Uint8Array.of(0x40, 0x00, 0, 0);
    for (let t = 10; t <= 700; t += 10) {
      w.runUntil(t * S);
      expect(w.client.decapsulate(inbound, 4, RELAY, w.now)).toBe(busy);
    }
    const binds = w.requests(StunMethod.channelBind).map((r) => [r.msg!.channelNumber, r.at / S]);
    expect(binds).toEqual([[0x4000, 0], [0x4001, 0], [0x4000, 300], [0x4000, 600]]);
    const buf = new Uint8Array(16);
    expect(idle.usable(w.now)).toBe(false); // lapsed at 600 s
    expect(w.client.encapsulate(buf, 0, idle, w.now)).toBe(4); // goes out on a fresh binding at once
    w.pump();
    expect(w.requests(StunMethod.channelBind).at(-1)!.msg!.channelNumber).toBe(0x4001); // re-bound, same number
    expect(w.requests(StunMethod.channelBind).at(-1)!.at).toBe(w.now);
  });

  test("a channel handle from an allocation since replaced still sends, on a new binding", () => {
    const w = new World();
    const old = w.client.bindChannel(PEER, w.now)!;
    w.pump();
    w.relay.allocated = false; // the relay restarted: the refresh meets 437 and a new allocation is made
    w.runUntil(301 * S);
    expect(w.ofType("allocated").length).toBe(2);
    expect(old.usable(w.now)).toBe(false);
    const buf = new Uint8Array(16);
    expect(w.client.encapsulate(buf, 0, old, w.now)).toBe(4);
    w.pump();
    expect(w.relay.channels.get(0x4000)).toEqual(PEER);
    expect(w.ofType("channel_bound").length).toBe(2);
  });

  test("without an allocation nothing is sent and the drop is counted", () => {
    const w = new World({}, { password: "wrong" });
    const c = w.client.bindChannel(PEER, w.now);
    expect(c).toBeUndefined(); // failed: no channels
    const w2 = new World();
    const c2 = w2.client.bindChannel(PEER, w2.now)!;
    w2.client.free(w2.now);
    expect(w2.client.encapsulate(new Uint8Array(8), 0, c2, w2.now)).toBe(-1);
    expect(w2.client.drops.get("no_channel")).toBe(1);
  });

  test("channels asked for before the allocation exists are bound once it does", () => {
    const w = new World();
    w.client.restart(w.now);
    w.relay.allocated = false;
    const c = w.client.bindChannel(PEER, w.now)!;
    expect(w.client.encapsulate(new Uint8Array(8), 0, c, w.now)).toBe(-1);
    w.pump();
    expect(w.client.state).toBe("allocated");
    expect(w.ofType("channel_bound").length).toBe(1);
  });
});

describe("permissions, indications, integrity, free", () => {
  test("a permission is created once allocated and refreshed every 4 minutes until removed", () => {
    const w = new World();
    w.client.createPermission(PEER.address, w.now);
    w.runUntil(600 * S);
    expect(w.requests(StunMethod.createPermission).map((r) => r.at / S)).toEqual([0, 240, 480]);
    expect(w.relay.permissions.has(PEER.address)).toBe(true);
    w.client.removePermission(PEER.address);
    w.runUntil(1200 * S);
    expect(w.requests(StunMethod.createPermission).length).toBe(3);
  });

  test("a Data indication becomes a data event naming the peer", () => {
    const w = new World();
    const d = w.relay.dataIndication(PEER, Uint8Array.of(7, 7));
    expect(w.client.handleInput(d, d.length, RELAY, w.now)).toBe(true);
    w.pump();
    const [e] = w.ofType("data");
    expect(e!.peer).toEqual(PEER);
    expect([...e!.data]).toEqual([7, 7]);
  });

  test("a forged success without the right MAC is dropped, the real answer still counts", () => {
    const w = new World();
    w.relay.silent = true;
    w.client.bindChannel(PEER, w.now);
    const req = w.client.pollTransmit()!;
    const m = parseStun(req.data) as StunMessage;
    const forged = new StunWriter(m.method, StunClass.success, m.transactionId).integrity(new Uint8Array(16)).finish();
    expect(w.client.handleInput(forged, forged.length, RELAY, w.now)).toBe(true);
    expect(w.client.drops.get("integrity")).toBe(1);
    w.relay.silent = false;
    const real = w.relay.answer(req.data, ME)!;
    w.client.handleInput(real, real.length, RELAY, w.now);
    w.pump();
    expect(w.ofType("channel_bound").length).toBe(1);
  });

  test("STUN from someone other than the relay is left for others; garbage from the relay is counted", () => {
    const w = new World();
    const b = new StunWriter(StunMethod.binding, StunClass.success, new Uint8Array(12)).finish();
    expect(w.client.handleInput(b, b.length, PEER, w.now)).toBe(false);
    expect(w.client.handleInput(b, b.length, RELAY, w.now)).toBe(true);
    expect(w.client.drops.get("unknown_transaction")).toBe(1);
    expect(w.client.handleInput(b, 10, RELAY, w.now)).toBe(true);
    expect(w.client.drops.get("truncated")).toBe(1);
  });

  test("free deletes the allocation with LIFETIME 0, then says freed", () => {
    const w = new World();
    w.client.free(w.now);
    w.pump();
    expect(w.requests(StunMethod.refresh).at(-1)!.msg!.lifetime).toBe(0);
    expect(w.relay.allocated).toBe(false);
    expect(w.ofType("candidates_invalidated").map((e) => e.reason)).toEqual(["freed"]);
    expect(w.events.at(-1)).toEqual({ type: "freed" });
    expect(w.client.pollTimeout()).toBeUndefined();
  });
});

test("a lossy link (5% loss each way, 5% duplicates) for an hour: the allocation and a busy channel survive", () => {
  // Every request gets 4 tries within 8 s (1 − 0.0975⁴ per transaction), so a real outage is
  // needed to fail it; duplicated answers must not confuse the transaction matching.
  let s = 42;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0), s / 2 ** 32);
  const w = new World();
  w.lose = () => rnd() < 0.05;
  w.duplicate = () => rnd() < 0.05;
  const c = w.client.bindChannel(PEER, w.now)!;
  const inbound = Uint8Array.of(0x40, 0x00, 0, 0);
  let delivered = 0;
  for (let t = 1; t <= 3600; t += 5) {
    w.runUntil(t * S);
    if (w.client.decapsulate(inbound, 4, RELAY, w.now) === c) delivered++;
  }
  expect(w.ofType("failed"), JSON.stringify(w.ofType("failed"))).toEqual([]);
  expect(w.client.state).toBe("allocated");
  expect(delivered).toBe(720);
  expect(w.client.drops.get("unknown_transaction")).toBeGreaterThan(0); // the duplicates, counted
  expect(w.requests(StunMethod.refresh).length).toBeGreaterThanOrEqual(12);
});
