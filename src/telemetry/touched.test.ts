import { expect, spyOn, test } from "bun:test";
import { encodeKey } from "../crypto/x25519.ts";
import { parseCidr } from "../ip/address.ts";
import { DatagramBatch, TunBatch } from "../node/batches.ts";
import { GatewayNode, isGatewayEvent, isIceEvent } from "../node/gateway-node.ts";
import { TunnelClients, type SimClient } from "../../test/support/tunnel-clients.ts";
import { icmpEcho } from "../../test/support/icmp.ts";
import { ConnectionStates } from "./connection-state.ts";
import { ProblemDetector } from "./problems.ts";
import { ThroughputRing } from "./throughput.ts";
import { TouchedSince, touchedFeed } from "./touched.ts";

const ping = (c: SimClient, seq: number) => icmpEcho({ src: c.ip, dst: "10.50.0.9", type: 8, id: 7, seq, payload: Uint8Array.of(seq & 0xff) });

/**
 * 40 simulated seconds of one busy client beside `idle` idle peers, with the gateway's periodic
 * samplers wired as run.ts wires them (problems and states every second, rates every 5 s). Returns
 * the connections the samplers were handed per tick, what they computed, and how often anything
 * walked every connection.
 */
function samplerTicks(idle: number) {
  const sim = new TunnelClients();
  const node = new GatewayNode({ tunnel: sim.gw });
  const busy = sim.client();
  sim.gw.upsertPeer({ publicKey: busy.local.publicKey, allowedIPs: [parseCidr(`${busy.ip}/32`)] });
  sim.idlePeers(idle);
  const t0 = sim.now;
  const problems = new ProblemDetector({ gatewayPublicKey: encodeKey(sim.gw.identity.publicKey), neverConnectedMs: 3_600_000 });
  const states = new ConnectionStates();
  // Start-up (run.ts's trackPeers): every peer enters the detector and the state machine once.
  for (const c of sim.gw.connections()) {
    problems.peerAdded(c.cid, c.publicKey, t0);
    states.added(c.cid, t0);
  }
  const rates = new ThroughputRing(t0);
  const forProblems = new TouchedSince();
  const forRates = new TouchedSince();
  const feed = touchedFeed(() => sim.gw.takeTouched(), [forProblems, forRates]);
  feed(); // the peers just added are listed once: the start's cost, not a tick's
  forProblems.take();
  forRates.take();
  // From here on, walking every connection is what the samplers must not do.
  const walks = spyOn(sim.gw, "connections");
  const tunOut = new TunBatch(64);
  const udpOut = new DatagramBatch(64);
  const handed: number[] = [];
  for (let second = 1; second <= 40; second++) {
    busy.peer.send(ping(busy, second), sim.now);
    sim.turn(node, busy, tunOut, udpOut);
    for (let e = node.pollEvent(); e; e = node.pollEvent()) {
      if (isGatewayEvent(e) || isIceEvent(e)) continue;
      states.onEvent(e, sim.now);
      problems.onEvent(e, sim.now);
    }
    tunOut.clear();
    sim.now += 1000;
    busy.peer.handleTimeout(sim.now);
    // The 1 s sampler tick.
    const before = sim.gw.work.touchedVisits;
    feed();
    const touched = forProblems.take().live;
    problems.sample(sim.gw, sim.now, touched);
    states.sampleTouched(touched, sim.now);
    if (second % 5 === 0) {
      const t = forRates.take();
      rates.sampleChanged(sim.now, t.live.map((c) => ({ cid: c.cid, rxBytes: c.peer.stats.rxBytes, txBytes: c.peer.stats.txBytes, handshakesCompleted: c.peer.stats.handshakesCompleted, handshakesFailed: c.peer.stats.handshakesFailed })), t.removed.map((c) => c.cid));
    }
    handed.push(sim.gw.work.touchedVisits - before);
  }
  const busyCid = sim.gw.connectionFor(parseCidr(`${busy.ip}/32`).bytes)!.cid;
  const result = { handed, walks: walks.mock.calls.length, rates: rates.points().map((p) => [p.rx_bytes_per_s, p.tx_bytes_per_s, p.handshakes]), busyState: states.get(busyCid)!.state };
  walks.mockRestore();
  return result;
}

test("periodic samplers visit only the connections with activity: 10 000 idle peers beside a busy one add no visit and change no figure", () => {
  const alone = samplerTicks(0);
  expect(alone.handed.every((n) => n === 1)).toBe(true);
  expect(alone.busyState).toBe("connected");
  expect(alone.rates.some(([rx]) => rx! > 0)).toBe(true);
  const crowded = samplerTicks(10_000);
  // Visit for visit the same, and nothing walked every connection.
  expect(crowded.handed).toEqual(alone.handed);
  expect(crowded.walks).toBe(0);
  expect(crowded.rates).toEqual(alone.rates);
  expect(crowded.busyState).toBe("connected");
}, 120_000);

test("a removed connection is listed once, flagged removed; rates forget it and keep the others' sum", () => {
  const sim = new TunnelClients();
  const a = sim.client();
  const b = sim.client();
  const ca = sim.gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr(`${a.ip}/32`)] });
  sim.gw.upsertPeer({ publicKey: b.local.publicKey, allowedIPs: [parseCidr(`${b.ip}/32`)] });
  expect(sim.gw.takeTouched().length).toBe(2);
  expect(sim.gw.takeTouched().length).toBe(0);
  sim.gw.removePeer(a.local.publicKey);
  const round = sim.gw.takeTouched();
  expect(round.map((c) => [c.cid, c.removed])).toEqual([[ca.cid, true]]);
  const s = new TouchedSince();
  s.add(round);
  expect(s.take()).toEqual({ live: [], removed: [ca] });
});

test("connected connections go stale with no traffic and no listing; a touched one comes back", () => {
  const states = new ConnectionStates({ staleAfterMs: 10_000 });
  states.onEvent({ type: "session_confirmed", cid: 5, session: 0, rttMs: 1 } as never, 0);
  expect(states.get(5)!.state).toBe("connected");
  states.sampleTouched([], 5_000);
  expect(states.get(5)!.state).toBe("connected");
  states.sampleTouched([], 10_001);
  expect(states.get(5)!.state).toBe("stale");
  states.sampleTouched([{ cid: 5, removed: false, peer: { stats: { rxPackets: 3 } } }], 12_000);
  expect(states.get(5)).toMatchObject({ state: "connected", since: 12_000 });
});
