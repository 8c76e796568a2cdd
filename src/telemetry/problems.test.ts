// Connection states and named problems on simulated time: a gateway Tunnel and real WirePeer
// clients (misconfigured on purpose) exchange datagrams in memory; every gateway event feeds the
// state machine and the detector, as run.ts does. Minutes pass in milliseconds.
import { expect, test } from "bun:test";
import { nobleAead } from "../crypto/aead-noble.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { parseCidr } from "../ip/address.ts";
import { Tunnel } from "../tunnel/index.ts";
import { LocalIdentity, WirePeer, type Endpoint } from "../wire/index.ts";
import { seededRandom } from "../../test/support/wire-pair.ts";
import { icmpEcho } from "../../test/support/icmp.ts";
import { ConnectionStates } from "./connection-state.ts";
import { ProblemDetector, problemView, type ProblemChange } from "./problems.ts";

const GW: Endpoint = { address: "192.0.2.1", port: 52625 };
const T0 = 1_760_000_000_000;

interface Client {
  peer: WirePeer;
  addr: Endpoint;
  ip: string;
  publicKey: Uint8Array;
  local: LocalIdentity;
}

function world(opts: { neverConnectedMs?: number } = {}) {
  const random = seededRandom(7);
  let now = T0;
  const gw = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(random), random });
  const states = new ConnectionStates();
  const detector = new ProblemDetector({ gatewayPublicKey: encodeKey(gw.identity.publicKey), neverConnectedMs: opts.neverConnectedMs });
  const changes: ProblemChange[] = [];
  const clients: Client[] = [];
  const out = new Uint8Array(70000);
  /** Offline endpoints: what the gateway sends there is lost. */
  const silent = new Set<string>();

  const addPeer = (publicKey: Uint8Array, ip: string, extra: { presharedKey?: Uint8Array; endpoint?: Endpoint; persistentKeepalive?: number } = {}) => {
    const conn = gw.upsertPeer({ publicKey, allowedIPs: [parseCidr(`${ip}/32`)], ...extra });
    states.added(conn.cid, now);
    detector.peerAdded(conn.cid, conn.publicKey, now, extra.endpoint !== undefined);
    return conn;
  };
  const client = (o: { n: number; gatewayKey?: Uint8Array; presharedKey?: Uint8Array; ip?: string }): Client => {
    const local = new LocalIdentity(generatePrivateKey(random), random);
    const addr: Endpoint = { address: `198.51.100.${o.n}`, port: 40000 + o.n };
    const peer = new WirePeer({ aead: nobleAead, local, remoteStatic: o.gatewayKey ?? gw.identity.publicKey, presharedKey: o.presharedKey, connectionId: 100 + o.n, endpoint: GW, random });
    const c = { peer, addr, ip: o.ip ?? `10.99.0.${o.n + 1}`, publicKey: local.publicKey, local };
    clients.push(c);
    return c;
  };
  const pump = () => {
    for (let round = 0; round < 20; round++) {
      let moved = false;
      for (const c of clients) {
        for (let t = c.peer.pollTransmit(); t; t = c.peer.pollTransmit()) {
          moved = true;
          gw.decapsulate(t.data, c.addr, out, now);
        }
      }
      for (let t = gw.pollTransmit(); t; t = gw.pollTransmit()) {
        moved = true;
        const c = clients.find((x) => x.addr.address === t.to.address && x.addr.port === t.to.port);
        if (c && !silent.has(t.to.address)) c.peer.handleInput(t.data, GW, now);
      }
      for (const c of clients) while (c.peer.pollEvent());
      for (let e = gw.pollEvent(); e; e = gw.pollEvent()) {
        states.onEvent(e, now);
        detector.onEvent(e, now);
      }
      if (!moved) break;
    }
  };
  /** Time passes in 1 s turns: timers fire, datagrams flow, the detector samples each turn. */
  const run = (ms: number) => {
    const end = now + ms;
    while (now < end) {
      now += 1000;
      for (const c of clients) {
        const t = c.peer.pollTimeout();
        if (t !== undefined && t <= now) c.peer.handleTimeout(now);
      }
      gw.handleTimeout(now);
      pump();
      // As the gateway samples: only the connections the tunnel touched since the last turn.
      const touched = gw.takeTouched();
      detector.sample(gw, now, touched);
      states.sampleTouched(touched, now);
      for (let ch = detector.pollChange(); ch; ch = detector.pollChange()) changes.push(ch);
    }
  };
  const ping = (c: Client, src = c.ip) => {
    c.peer.send(icmpEcho({ src, dst: "10.50.0.9", type: 8, id: 1, seq: 1, payload: Uint8Array.of(1) }), now);
    pump();
  };
  return { gw, states, detector, changes, addPeer, client, run, ping, silent, now: () => now };
}

const kinds = (d: ProblemDetector) => d.problems().map((p) => p.kind);

test("a responder is awaiting confirmation after its response and connected at the first packet on the session", () => {
  const w = world();
  const c = w.client({ n: 1 });
  const conn = w.addPeer(c.publicKey, c.ip);
  expect(w.states.get(conn.cid)!.state).toBe("idle");
  // The client initiates; its response has not been delivered yet: the gateway has proven nothing.
  c.peer.connect(w.now());
  for (let t = c.peer.pollTransmit(); t; t = c.peer.pollTransmit()) w.gw.decapsulate(t.data, c.addr, new Uint8Array(2000), w.now());
  for (let e = w.gw.pollEvent(); e; e = w.gw.pollEvent()) w.states.onEvent(e, w.now());
  expect(w.states.get(conn.cid)).toMatchObject({ state: "awaiting_confirmation", since: T0 });
  w.run(2000);
  expect(w.states.get(conn.cid)).toMatchObject({ state: "connected", since: T0 + 1000 });
  expect(kinds(w.detector)).toEqual([]);
});

test("a wrong preshared key stays awaiting confirmation and is named after three unconfirmed handshakes", () => {
  const w = world();
  const c = w.client({ n: 1, presharedKey: new Uint8Array(32).fill(9) });
  const conn = w.addPeer(c.publicKey, c.ip, { presharedKey: new Uint8Array(32).fill(1) });
  w.ping(c);
  w.run(30_000);
  expect(w.states.get(conn.cid)).toMatchObject({ state: "awaiting_confirmation", confirmed: 0 });
  const p = w.detector.problems();
  expect(p.map((x) => x.kind)).toEqual(["psk_mismatch"]);
  expect(p[0]).toMatchObject({ cid: conn.cid, public_key: encodeKey(c.publicKey), source: "198.51.100.1:40001" });
  expect(p[0]!.count).toBeGreaterThanOrEqual(3);
  expect(p[0]!.likely_cause).toContain("PresharedKey");
  // Raised once, however many more responses go unconfirmed.
  expect(w.changes.filter((x) => x.type === "appeared")).toHaveLength(1);
  // The stack says where it was detected, not where it is reported.
  expect(p[0]!.error.stack).toContain("problems.ts");
});

test("the problem clears and the state is connected once the preshared keys agree", () => {
  const w = world();
  const psk = new Uint8Array(32).fill(1);
  const c = w.client({ n: 2, presharedKey: new Uint8Array(32).fill(9) });
  const conn = w.addPeer(c.publicKey, c.ip, { presharedKey: psk });
  w.ping(c);
  w.run(20_000);
  expect(kinds(w.detector)).toEqual(["psk_mismatch"]);
  // The operator fixes the client: same key, the gateway's preshared key.
  c.peer.zeroize();
  c.peer = new WirePeer({ aead: nobleAead, local: c.local, remoteStatic: w.gw.identity.publicKey, presharedKey: psk, connectionId: 102, endpoint: GW, random: seededRandom(3) });
  w.ping(c);
  w.run(6000);
  expect(kinds(w.detector)).toEqual([]);
  expect(w.states.get(conn.cid)!.state).toBe("connected");
  expect(w.changes.map((x) => `${x.type}:${x.problem.kind}`)).toEqual(["appeared:psk_mismatch", "cleared:psk_mismatch"]);
});

test("a problem goes with its connection when the connection is replaced (new preshared key, new cid)", () => {
  const w = world();
  const c = w.client({ n: 12, presharedKey: new Uint8Array(32).fill(9) });
  const conn = w.addPeer(c.publicKey, c.ip, { presharedKey: new Uint8Array(32).fill(1) });
  w.ping(c);
  w.run(20_000);
  expect(kinds(w.detector)).toEqual(["psk_mismatch"]);
  const next = w.gw.upsertPeer({ publicKey: c.publicKey, allowedIPs: conn.allowedIPs, presharedKey: new Uint8Array(32).fill(9) });
  expect(next.cid).not.toBe(conn.cid);
  w.detector.retain((cid) => w.gw.connection(cid) !== undefined, w.now());
  expect(kinds(w.detector)).toEqual([]);
});

test("a client with the wrong gateway public key is named by its source address, once", () => {
  const w = world();
  const c = w.client({ n: 3, gatewayKey: publicKeyOf(generatePrivateKey(seededRandom(99))) });
  w.addPeer(c.publicKey, c.ip);
  w.ping(c);
  w.run(30_000);
  const p = w.detector.problems();
  expect(p.map((x) => x.kind)).toEqual(["wrong_gateway_key"]);
  expect(p[0]).toMatchObject({ source: "198.51.100.3" });
  expect(p[0]!.cid).toBeUndefined();
  expect(p[0]!.count).toBeGreaterThanOrEqual(3);
  expect(p[0]!.fix).toContain(encodeKey(w.gw.identity.publicKey));
  // Quiet for the clearing period: it goes, said once.
  w.silent.add("198.51.100.3");
  c.peer.zeroize();
  w.run(6 * 60_000);
  expect(kinds(w.detector)).not.toContain("wrong_gateway_key");
  expect(w.changes.map((x) => `${x.type}:${x.problem.kind}`)).toEqual(["appeared:wrong_gateway_key", "cleared:wrong_gateway_key"]);
});

test("an unknown key knocking is named with its source and the key it carries", () => {
  const w = world();
  const c = w.client({ n: 4 });
  w.ping(c);
  w.run(12_000);
  const p = w.detector.problems();
  expect(p.map((x) => x.kind)).toEqual(["unknown_key"]);
  expect(p[0]).toMatchObject({ source: "198.51.100.4", public_key: encodeKey(c.publicKey) });
});

test("packets from outside AllowedIPs name the source and the allowed list on that connection", () => {
  const w = world();
  const c = w.client({ n: 5 });
  const conn = w.addPeer(c.publicKey, c.ip);
  w.ping(c);
  w.run(2000);
  expect(w.states.get(conn.cid)!.state).toBe("connected");
  w.ping(c, "10.99.0.77");
  w.ping(c, "10.99.0.77");
  w.run(1000);
  const p = w.detector.problems();
  expect(p.map((x) => x.kind)).toEqual(["allowed_ips"]);
  expect(p[0]).toMatchObject({ cid: conn.cid, source: "10.99.0.77", count: 2 });
  expect(p[0]!.likely_cause).toContain("10.99.0.6/32");
});

test("a peer that never connected is named after the grace period, and clears when it connects", () => {
  const w = world({ neverConnectedMs: 60_000 });
  const c = w.client({ n: 6 });
  const conn = w.addPeer(c.publicKey, c.ip);
  w.run(59_000);
  expect(kinds(w.detector)).toEqual([]);
  w.run(2000);
  expect(w.detector.problems()).toMatchObject([{ kind: "never_connected", cid: conn.cid }]);
  w.ping(c);
  w.run(1000);
  expect(kinds(w.detector)).toEqual([]);
});

test("an endpoint that does not answer is named after three initiations, and the state is failed when it gives up", () => {
  const w = world();
  const c = w.client({ n: 7 });
  const conn = w.addPeer(c.publicKey, c.ip, { endpoint: c.addr });
  w.silent.add(c.addr.address);
  // The gateway has something for the peer: it initiates towards the configured endpoint.
  w.gw.encapsulate(icmpEcho({ src: "10.50.0.9", dst: c.ip, type: 8, id: 1, seq: 1, payload: Uint8Array.of(1) }), new Uint8Array(2000), w.now());
  w.run(1000);
  expect(w.states.get(conn.cid)!.state).toBe("handshaking");
  w.run(20_000);
  expect(w.detector.problems()).toMatchObject([{ kind: "endpoint_unreachable", cid: conn.cid, source: "198.51.100.7:40007" }]);
  w.run(100_000);
  const st = w.states.get(conn.cid)!;
  expect(st.state).toBe("failed");
  expect(st.since).toBeGreaterThan(T0 + 85_000);
});

test("an endpoint that does not answer is named even when a persistent keepalive restarts each retry round", () => {
  const w = world();
  const c = w.client({ n: 11 });
  const conn = w.addPeer(c.publicKey, c.ip, { endpoint: c.addr, persistentKeepalive: 5 });
  w.silent.add(c.addr.address);
  w.run(30_000);
  expect(w.detector.problems()).toMatchObject([{ kind: "endpoint_unreachable", cid: conn.cid }]);
});

test("a roaming client that went away is no unreachable endpoint: only a configured Endpoint is", () => {
  const w = world();
  const c = w.client({ n: 13 });
  const conn = w.addPeer(c.publicKey, c.ip);
  w.ping(c);
  w.run(2000);
  expect(w.states.get(conn.cid)!.state).toBe("connected");
  // The laptop closes; later the LAN has something for it: the gateway initiates to where it was.
  w.silent.add(c.addr.address);
  c.peer.zeroize();
  w.run(200_000);
  w.gw.encapsulate(icmpEcho({ src: "10.50.0.9", dst: c.ip, type: 8, id: 1, seq: 1, payload: Uint8Array.of(1) }), new Uint8Array(2000), w.now());
  w.run(30_000);
  expect(w.gw.connection(conn.cid)!.peer.stats.handshakesInitiated).toBeGreaterThan(3);
  expect(kinds(w.detector)).toEqual([]);
});

test("a connected peer that goes silent is stale after REJECT_AFTER_TIME", () => {
  const w = world();
  const c = w.client({ n: 8 });
  const conn = w.addPeer(c.publicKey, c.ip);
  w.ping(c);
  w.run(2000);
  expect(w.states.get(conn.cid)!.state).toBe("connected");
  w.silent.add(c.addr.address);
  c.peer.zeroize();
  w.run(170_000);
  expect(w.states.get(conn.cid)!.state).toBe("connected");
  w.run(15_000);
  expect(w.states.get(conn.cid)!.state).toBe("stale");
});

test("a flood of wrong-key handshakes from many sources keeps the problem list bounded", () => {
  const w = world();
  const detector = new ProblemDetector({ gatewayPublicKey: encodeKey(w.gw.identity.publicKey), max: 8, newSourcesPerMinute: 12 });
  const key = publicKeyOf(generatePrivateKey(seededRandom(5)));
  for (let i = 0; i < 40; i++) {
    const c = w.client({ n: 10 + i, gatewayKey: key });
    c.addr.address = `203.0.113.${i}`;
    c.peer.connect(w.now());
    w.run(1000);
    detector.sample(w.gw, w.now());
  }
  expect(detector.problems()).toHaveLength(8);
  // New sources are named at most 12 a minute (each is a log line and a Sentry event): 40 sources
  // in 40 s give 12 appearances, the rest counted.
  const appeared: string[] = [];
  for (let ch = detector.pollChange(); ch; ch = detector.pollChange()) if (ch.type === "appeared") appeared.push(ch.problem.source!);
  expect(appeared).toHaveLength(12);
  expect(detector.suppressedSources).toBeGreaterThanOrEqual(28); // every later knock from an unnamed source counts too
});

test("the API view is snake_case with ISO times and nulls for what is unknown", () => {
  const w = world({ neverConnectedMs: 1000 });
  const c = w.client({ n: 9 });
  const conn = w.addPeer(c.publicKey, c.ip);
  w.run(2000);
  const v = problemView(w.detector.problems()[0]!);
  expect(Object.keys(v)).toEqual(["kind", "cid", "public_key", "source", "title", "likely_cause", "fix", "since", "last_seen", "count"]);
  expect(v).toMatchObject({ kind: "never_connected", cid: conn.cid, source: null, since: new Date(T0 + 1000).toISOString() });
});

test("a peer that never connected because of a named cause shows that cause, not also 'never connected'", () => {
  const w = world({ neverConnectedMs: 3000 });
  // Before the cause is known it is "never connected"; the PSK mismatch then replaces it.
  const c = w.client({ n: 7, presharedKey: new Uint8Array(32).fill(9) });
  const conn = w.addPeer(c.publicKey, c.ip, { presharedKey: new Uint8Array(32).fill(1) });
  w.run(4000);
  expect(kinds(w.detector)).toEqual(["never_connected"]);
  w.ping(c);
  w.run(30_000);
  expect(kinds(w.detector)).toEqual(["psk_mismatch"]);
  const cleared = w.changes.find((x) => x.type === "cleared" && x.problem.kind === "never_connected");
  expect(cleared).toMatchObject({ superseded_by: "psk_mismatch", problem: { cid: conn.cid } });
  // A configured Endpoint that never answers: named as that once known, never as both.
  const d = world({ neverConnectedMs: 3000 });
  const s = d.client({ n: 8 });
  d.silent.add(s.addr.address);
  d.addPeer(s.publicKey, s.ip, { endpoint: s.addr, persistentKeepalive: 5 });
  d.run(60_000);
  expect(kinds(d.detector)).toEqual(["endpoint_unreachable"]);
});
