import { describe, expect, test } from "bun:test";
import { ReconnectBackoff } from "./backoff.ts";
import { BACKOFF_MAX_ELAPSED_MS, EXIT_BAD_CONFIG, EXIT_RUNTIME, HEARTBEAT_INTERVAL_MS, JOIN_TIMEOUT_MS, MAX_BUFFERED_MESSAGES } from "./constants.ts";
import { gatewayChannel, type ChannelEvent, type GatewayChannel, type GatewayIngress } from "./index.ts";

const KEY = "uMBCkAxTewfSgypIyxdQ18uCi84HLtKmQJy0wvQrYWY=";
const PSK = "anX2T9RH9mimT5Xd5+HqNGV0bfCodWDHQch1DLiFNls=";
const CLIENT = "c1e2f3a4-0000-4000-8000-000000000001";
const RESOURCE = "73037362-715d-4a83-a749-f18eadd970e6";

/** A channel on a fake clock with a socket that does what it is told, and what came out of it. */
class World {
  now = 1_000_000;
  readonly ch: GatewayChannel;
  readonly sent: { topic: string; event: string; payload: unknown; ref: number | null }[] = [];
  readonly events: ChannelEvent<GatewayIngress>[] = [];
  socket: "none" | "opening" | "open" = "none";
  opens = 0;

  constructor(random = () => 0.5) {
    this.ch = gatewayChannel({ random });
  }

  drain(): void {
    for (let ev = this.ch.pollEvent(); ev; ev = this.ch.pollEvent()) {
      this.events.push(ev);
      if (ev.kind === "open") {
        this.socket = "opening";
        this.opens++;
      }
      if (ev.kind === "close") this.socket = "none";
    }
    for (let f = this.ch.pollSend(); f !== undefined; f = this.ch.pollSend()) this.sent.push(JSON.parse(f));
  }
  start(): this {
    this.ch.connect(this.now);
    this.drain();
    return this;
  }
  up(): this {
    expect(this.socket).toBe("opening");
    this.socket = "open";
    this.ch.handleConnected(this.now);
    this.drain();
    return this;
  }
  /** Answers the pending join ok. */
  joinOk(): this {
    const join = this.sent.findLast((f) => f.event === "phx_join")!;
    return this.recv({ topic: "gateway", event: "phx_reply", payload: { status: "ok", response: {} }, ref: join.ref });
  }
  recv(frame: unknown): this {
    this.ch.handleMessage(typeof frame === "string" ? frame : JSON.stringify(frame), this.now);
    this.drain();
    return this;
  }
  push(event: string, payload: unknown): this {
    return this.recv({ topic: "gateway", event, payload, ref: null });
  }
  down(end: Parameters<GatewayChannel["handleDisconnected"]>[0] = { kind: "closed", code: 1006 }): this {
    this.socket = "none";
    this.ch.handleDisconnected(end, this.now);
    this.drain();
    return this;
  }
  /** Runs timers until `ms` have passed, firing each deadline at its time. */
  advance(ms: number): this {
    const end = this.now + ms;
    for (;;) {
      const t = this.ch.pollTimeout();
      if (t === undefined || t > end) break;
      this.now = Math.max(this.now, t);
      this.ch.handleTimeout(this.now);
      this.drain();
    }
    this.now = end;
    return this;
  }
  kinds(): string[] {
    return this.events.map((e) => e.kind);
  }
  last<K extends ChannelEvent<GatewayIngress>["kind"]>(kind: K): Extract<ChannelEvent<GatewayIngress>, { kind: K }> {
    return this.events.findLast((e) => e.kind === kind) as never;
  }
}

const flow = (ref = "flow-1") => ({
  ref,
  resource: { type: "cidr", id: RESOURCE, name: "lab", address: "10.0.0.0/24", filters: [{ protocol: "tcp", port_range_start: 80, port_range_end: 80 }] },
  gateway_ice_credentials: { username: "gw", password: "gwpassword1234567890ab" },
  client: { id: CLIENT, public_key: KEY, preshared_key: PSK, ipv4: "100.64.0.2", ipv6: "fd00:2021:1111::2" },
  client_ice_credentials: { username: "cl", password: "clpassword1234567890ab" },
  expires_at: 1_900_000_000,
});

describe("joining", () => {
  test("after the socket opens, phx_join goes out first with ref 0 and a null payload on topic gateway", () => {
    const w = new World().start().up();
    expect(w.sent[0]).toEqual({ topic: "gateway", event: "phx_join", payload: null, ref: 0 });
  });

  test("messages wait for the join reply, then go out in order with refs counting up", () => {
    const w = new World().start();
    w.ch.send({ event: "flow_authorized", payload: { ref: "a" } }, w.now);
    w.up();
    w.ch.send({ event: "flow_authorized", payload: { ref: "b" } }, w.now);
    w.drain();
    expect(w.sent.map((f) => f.event)).toEqual(["phx_join"]);
    w.now += 40;
    w.joinOk();
    expect(w.sent.map((f) => [f.event, f.ref, (f.payload as { ref?: string })?.ref])).toEqual([["phx_join", 0, undefined], ["flow_authorized", 1, "a"], ["flow_authorized", 2, "b"]]);
    expect(w.last("joined")).toEqual({ kind: "joined", topic: "gateway", latencyMs: 40 });
    expect(w.ch.stats()).toMatchObject({ state: "joined", joinLatencyMs: 40 });
  });

  test("a join reply with a string ref (as phoenix.js would echo it) counts", () => {
    const w = new World().start().up().recv({ topic: "gateway", event: "phx_reply", payload: { status: "ok", response: {} }, ref: "0" });
    expect(w.ch.stats().state).toBe("joined");
  });

  test("no join reply within 5 s: the socket is closed and a new one opened at once", () => {
    const w = new World().start().up();
    w.advance(JOIN_TIMEOUT_MS - 1);
    expect(w.opens).toBe(1);
    w.advance(1);
    expect(w.kinds().slice(-3)).toEqual(["close", "reconnect_scheduled", "open"]);
    expect(w.last("reconnect_scheduled")).toMatchObject({ afterMs: 0, reason: expect.stringContaining("join") });
    w.up();
    expect(w.sent.at(-1)).toEqual({ topic: "gateway", event: "phx_join", payload: null, ref: 0 }); // refs start over per socket
  });

  test("an error reply to the join is fatal with exit code 1", () => {
    const w = new World().start().up().recv({ topic: "gateway", event: "phx_reply", payload: { status: "error", response: { reason: "disabled" } }, ref: 0 });
    expect(w.last("fatal")).toMatchObject({ reason: "join_rejected", exitCode: EXIT_RUNTIME, message: expect.stringContaining("disabled") });
    expect(w.socket).toBe("none");
    expect(w.ch.pollTimeout()).toBeUndefined();
  });

  test("'unmatched topic' in reply to a push: join again, and later pushes wait for that join", () => {
    const w = new World().start().up().joinOk();
    w.ch.send({ event: "flow_authorized", payload: { ref: "x" } }, w.now);
    w.drain();
    const pushRef = w.sent.at(-1)!.ref;
    w.recv({ topic: "gateway", event: "phx_reply", payload: { status: "error", response: { reason: "unmatched topic" } }, ref: pushRef });
    expect(w.sent.at(-1)).toMatchObject({ event: "phx_join", ref: 2 });
    w.ch.send({ event: "flow_authorized", payload: { ref: "y" } }, w.now);
    w.drain();
    expect(w.sent.at(-1)!.event).toBe("phx_join");
    w.joinOk();
    expect(w.sent.at(-1)).toMatchObject({ event: "flow_authorized", payload: { ref: "y" } });
    expect(w.kinds()).not.toContain("fatal");
  });

  test("another error reply to a push is reported, not fatal", () => {
    const w = new World().start().up().joinOk();
    w.recv({ topic: "gateway", event: "phx_reply", payload: { status: "error", response: { reason: "bad ref" } }, ref: 7 });
    expect(w.last("error_reply")).toEqual({ kind: "error_reply", topic: "gateway", ref: 7, reason: "bad ref" });
    expect(w.ch.stats().state).toBe("joined");
  });
});

describe("heartbeat", () => {
  test("every 30 s of silence a heartbeat goes to topic phoenix; each frame sent restarts the timer", () => {
    const w = new World().start().up().joinOk();
    const t0 = w.now;
    w.advance(HEARTBEAT_INTERVAL_MS - 1);
    expect(w.sent.filter((f) => f.event === "heartbeat")).toHaveLength(0);
    w.advance(1);
    expect(w.sent.at(-1)).toEqual({ topic: "phoenix", event: "heartbeat", payload: {}, ref: 1 });
    w.recv({ topic: "phoenix", event: "phx_reply", payload: { status: "ok", response: {} }, ref: 1 });
    w.advance(10_000);
    w.ch.send({ event: "flow_authorized", payload: { ref: "z" } }, w.now); // at t0+40 s
    w.drain();
    w.advance(HEARTBEAT_INTERVAL_MS - 1);
    expect(w.sent.filter((f) => f.event === "heartbeat")).toHaveLength(1);
    w.advance(1);
    expect(w.sent.filter((f) => f.event === "heartbeat")).toHaveLength(2);
    expect(w.now - t0).toBe(70_000);
  });

  test("a heartbeat unanswered until the next is due: the socket is dead, reconnect", () => {
    const w = new World().start().up().joinOk();
    w.advance(HEARTBEAT_INTERVAL_MS); // sent, never answered
    expect(w.kinds()).not.toContain("close");
    w.advance(HEARTBEAT_INTERVAL_MS);
    expect(w.last("reconnect_scheduled").reason).toBe("heartbeat unanswered");
    expect(w.socket).toBe("opening");
  });
});

describe("reconnecting", () => {
  test("first retry at once, then 500 ms × 1.5 with ±50 % jitter from the injected randomness", () => {
    const draws = [0, 0.999999, 0.5, 0.5];
    const w = new World(() => draws.shift() ?? 0.5).start().up().joinOk();
    w.down();
    expect(w.last("reconnect_scheduled")).toMatchObject({ afterMs: 0, attempt: 1 });
    expect(w.socket).toBe("opening");
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      w.down({ kind: "error", message: "ECONNREFUSED" });
      const d = w.last("reconnect_scheduled").afterMs;
      delays.push(d);
      w.advance(d - 1);
      expect(w.socket).toBe("none");
      w.advance(1);
      expect(w.socket).toBe("opening");
    }
    // intervals 500, 750, 1125, 1687.5: lowest draw → 50 %, highest → 150 %, middle → 100 %
    expect(delays).toEqual([250, 1125, 1125, 1688]);
  });

  test("the interval stops growing at 60 s; the jittered delay stays within ±50 % of it", () => {
    const b = new ReconnectBackoff(0, () => 0.5);
    let t = 0;
    const seen: number[] = [];
    for (let d = b.next(t); d !== undefined; d = b.next(t)) {
      seen.push(d);
      t += d;
    }
    expect(seen.slice(0, 3)).toEqual([500, 750, 1125]);
    expect(Math.max(...seen)).toBe(60_000);
    expect(seen.filter((d) => d === 60_000).length).toBeGreaterThan(5);
    const lo = new ReconnectBackoff(0, () => 0);
    const hi = new ReconnectBackoff(0, () => 0.9999999);
    for (let i = 0; i < 20; i++) {
      lo.next(0);
      hi.next(0);
    }
    expect(lo.next(0)).toBe(30_000);
    expect(hi.next(0)).toBe(90_000);
  });

  test("after 15 minutes without a join the gateway gives up with exit code 1", () => {
    const w = new World().start();
    w.down({ kind: "error", message: "ECONNREFUSED" }); // first: immediate
    let guard = 0;
    while (!w.kinds().includes("fatal") && guard++ < 100) {
      w.down({ kind: "error", message: "ECONNREFUSED" });
      if (w.kinds().includes("fatal")) break;
      w.advance(w.last("reconnect_scheduled").afterMs);
    }
    const fatal = w.last("fatal");
    expect(fatal).toMatchObject({ reason: "retries_exhausted", exitCode: EXIT_RUNTIME, message: expect.stringContaining("ECONNREFUSED") });
    const startedAt = 1_000_000;
    expect(w.now - startedAt).toBeLessThanOrEqual(BACKOFF_MAX_ELAPSED_MS);
    expect(w.now - startedAt).toBeGreaterThan(BACKOFF_MAX_ELAPSED_MS - 90_000);
  });

  test("a join resets the backoff: the next loss retries at once again", () => {
    const w = new World().start();
    w.down({ kind: "error", message: "refused" });
    w.down({ kind: "error", message: "refused" });
    expect(w.last("reconnect_scheduled").afterMs).toBe(500);
    w.advance(500).up().joinOk().down();
    expect(w.last("reconnect_scheduled").afterMs).toBe(0);
  });

  test("opening the socket gives up after 5 s and counts as a failure", () => {
    const w = new World().start();
    w.advance(4_999);
    expect(w.opens).toBe(1);
    w.advance(1);
    expect(w.kinds().slice(-3)).toEqual(["close", "reconnect_scheduled", "open"]);
    expect(w.last("reconnect_scheduled").reason).toContain("timed out");
  });

  test("phx_close on our topic: close and reconnect", () => {
    const w = new World().start().up().joinOk().push("phx_close", {});
    expect(w.kinds().slice(-3)).toEqual(["close", "reconnect_scheduled", "open"]);
    expect(w.last("reconnect_scheduled").reason).toContain("phx_close");
  });

  test("a socket event from a socket the core already gave up is ignored", () => {
    const w = new World().start().up().joinOk();
    w.ch.close();
    w.drain();
    w.down();
    w.recv("garbage");
    expect(w.kinds().filter((k) => k === "reconnect_scheduled" || k === "malformed")).toEqual([]);
  });
});

describe("fatal", () => {
  test("HTTP 401 on the upgrade: exit code 2 naming FIREZONE_TOKEN, no retry", () => {
    const w = new World().start().down({ kind: "http", status: 401, body: '{"code":"invalid_token"}' });
    expect(w.last("fatal")).toMatchObject({ reason: "unauthorized", exitCode: EXIT_BAD_CONFIG, message: expect.stringContaining("FIREZONE_TOKEN") });
    expect(w.ch.pollTimeout()).toBeUndefined();
    expect(w.opens).toBe(1);
  });

  test("HTTP 404 on the upgrade is fatal too and names FIREZONE_API_URL; 502 and 429 are retried", () => {
    expect(new World().start().down({ kind: "http", status: 404 }).last("fatal").message).toContain("FIREZONE_API_URL");
    for (const status of [502, 429]) {
      const w = new World().start().down({ kind: "http", status });
      expect(w.kinds()).not.toContain("fatal");
      expect(w.socket).toBe("opening");
    }
  });

  test("disconnect with reason token_expired: exit code 2", () => {
    const w = new World().start().up().joinOk().push("disconnect", { reason: "token_expired" });
    expect(w.last("fatal")).toMatchObject({ reason: "token_expired", exitCode: EXIT_BAD_CONFIG });
    expect(w.socket).toBe("none");
  });
});

describe("buffer", () => {
  test("at most 32 messages wait for a join; the oldest go first, each reported", () => {
    const w = new World().start();
    for (let i = 0; i < MAX_BUFFERED_MESSAGES + 3; i++) w.ch.send({ event: "flow_authorized", payload: { ref: `r${i}` } }, w.now);
    w.drain();
    expect(w.events.filter((e) => e.kind === "dropped")).toHaveLength(3);
    w.up().joinOk();
    const refs = w.sent.filter((f) => f.event === "flow_authorized").map((f) => (f.payload as { ref: string }).ref);
    expect(refs).toHaveLength(MAX_BUFFERED_MESSAGES);
    expect(refs[0]).toBe("r3");
    expect(w.ch.stats().dropped).toBe(3);
  });

  test("messages sent while reconnecting survive the reconnect", () => {
    const w = new World().start().up().joinOk().down();
    w.ch.send({ event: "broadcast_ice_candidates", payload: { client_ids: [CLIENT], candidates: ["candidate:1 1 udp 2130706431 10.0.0.1 52625 typ host"] } }, w.now);
    w.up().joinOk();
    expect(w.sent.at(-1)).toMatchObject({ event: "broadcast_ice_candidates", ref: 1 });
  });

  test("an outbound message that breaks its schema throws (a bug), naming the field", () => {
    const w = new World().start();
    expect(() => w.ch.send({ event: "broadcast_ice_candidates", payload: { client_ids: ["bad id!"], candidates: [] } }, w.now)).toThrow(/client_ids\.0/);
  });
});

describe("messages", () => {
  const joined = () => new World().start().up().joinOk();

  test("init, with defaults for what older portals leave out", () => {
    const w = joined().push("init", { interface: { ipv4: "100.64.0.1", ipv6: "fd00:2021:1111::1" }, config: { ipv4_masquerade_enabled: true, ipv6_masquerade_enabled: true } });
    const m = w.last("message").message;
    expect(m.event).toBe("init");
    if (m.event === "init") expect(m.payload).toMatchObject({ relays: [], authorizations: [], interface: { ipv4: "100.64.0.1", upstream_dns: [] } });
  });

  test("authorize_flow arrives typed, its resource parsed into the gateway's Resource", () => {
    const m = joined().push("authorize_flow", flow()).last("message").message;
    expect(m.event).toBe("authorize_flow");
    if (m.event !== "authorize_flow") return;
    expect(m.payload.client.id).toBe(CLIENT);
    expect(m.payload.resource).toMatchObject({ type: "cidr", id: RESOURCE, filters: [{ protocol: "tcp", portStart: 80, portEnd: 80 }] });
  });

  const valid: [string, unknown][] = [
    ["reject_access", { client_id: CLIENT, resource_id: RESOURCE }],
    ["ice_candidates", { client_id: CLIENT, candidates: ["candidate:1 1 udp 2130706431 10.0.0.1 52625 typ host"] }],
    ["invalidate_ice_candidates", { client_id: CLIENT, candidates: [] }],
    ["relays_presence", { disconnected_ids: ["r1"], connected: [{ type: "turn", id: "r2", addr: "[2001:db8::1]:3478", username: "u", password: "p", expires_at: 1_900_000_000 }] }],
    ["resource_updated", { type: "dns", id: RESOURCE, name: "app", address: "*.example.com", filters: [] }],
    ["resource_updated", { type: "internet", id: RESOURCE }],
    ["access_authorization_expiry_updated", { client_id: CLIENT, resource_id: RESOURCE, expires_at: 1_900_000_000 }],
    ["request_connection", { ref: "old-1", resource: { type: "cidr", id: RESOURCE, name: "x", address: "10.1.0.0/16", filters: [] }, client: { id: CLIENT, payload: { ice_parameters: { username: "u", password: "p" }, domain: null }, peer: { persistent_keepalive: null, public_key: KEY, preshared_key: PSK, ipv4: "100.64.0.3", ipv6: "fd00::3" } }, expires_at: null }],
    ["allow_access", { ref: "old-2", client_id: CLIENT, resource: { type: "dns", id: RESOURCE, name: "x", address: "app.example.com", filters: [] }, expires_at: null, payload: { name: "app.example.com", proxy_ips: ["100.96.0.1"] }, client_ipv4: "100.64.0.3", client_ipv6: "fd00::3" }],
  ];
  for (const [event, payload] of valid) {
    test(`${event} validates`, () => {
      const w = joined().push(event, payload);
      expect(w.ch.stats().malformed).toBe(0);
      expect(w.last("message").message.event).toBe(event as never);
    });
  }

  test("a malformed message is counted and named (topic, event, ref, zod issue), never fatal", () => {
    const bad = flow();
    bad.client.public_key = "not a key";
    const w = joined().recv({ topic: "gateway", event: "authorize_flow", payload: bad, ref: "42" });
    expect(w.last("malformed")).toEqual({ kind: "malformed", topic: "gateway", event: "authorize_flow", ref: "42", issue: "payload.client.public_key: is not a base64 32-byte key", count: 1 });
    w.recv("{not json").push("no_such_event", {}).push("resource_updated", { type: "cidr", id: RESOURCE, address: "10.0.0.300/8" });
    expect(w.events.filter((e) => e.kind === "malformed").map((e) => (e as { issue: string }).issue)).toEqual([
      expect.stringContaining("public_key"),
      expect.stringContaining("not JSON"),
      expect.stringContaining("no_such_event"),
      expect.stringContaining("resource address"),
    ]);
    expect(w.ch.stats()).toMatchObject({ malformed: 4, state: "joined" });
    expect(w.kinds()).not.toContain("fatal");
  });

  test("a frame on a topic that is not ours is malformed", () => {
    const w = joined().recv({ topic: "client", event: "init", payload: {}, ref: null });
    expect(w.last("malformed").issue).toContain("not ours");
  });
});
