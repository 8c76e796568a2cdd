import { describe, expect, test } from "bun:test";
import { ControllingDouble, IceWorld } from "../../test/support/ice-world.ts";
import { seededFloats, type LinkConditions } from "../../test/support/sim-link.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";
import { IceAgent, bindingRoute } from "./agent.ts";
import { decodeBinding, encodeBindingRequest, encodeBindingSuccess } from "./agent-messages.ts";
import { localCandidate } from "./candidate.ts";

const OURS = { ufrag: "gwuf", pwd: "gateway-password-0123456789" };
const THEIRS = { ufrag: "cluf", pwd: "client-password-0123456789ab" };
const GW_HOST = { address: "10.0.0.1", port: 52625 };
const CL_HOST = { address: "10.0.0.2", port: 40000 };

function seeded(seed: number): (b: Uint8Array) => void {
  const f = seededFloats(seed);
  return (b) => {
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(f() * 256);
  };
}

function world(opts: { link?: LinkConditions; seed?: number; log?: LogLine[]; peerLocals?: { address: string; port: number }[] } = {}) {
  const seed = opts.seed ?? 1;
  const log = opts.log ? new Logger(parseLogFilter("debug"), memorySink(opts.log)).target("ice") : undefined;
  const agent = new IceAgent({ local: OURS, remote: THEIRS, now: 0, random: seeded(seed), cid: "c1", ...(log ? { log } : {}) });
  const peer = new ControllingDouble(THEIRS, OURS, opts.peerLocals ?? [CL_HOST], seed);
  const w = new IceWorld(agent, peer, opts.link ?? {}, seed);
  return { agent, peer, w };
}

/** Both sides learn each other's host candidate, as the portal would relay them. */
function connectHosts(agent: IceAgent, peer: ControllingDouble, now = 0) {
  agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), now);
  agent.addRemoteCandidate(localCandidate("host", CL_HOST.address, CL_HOST.port), now);
  peer.addRemote(GW_HOST);
}

const checkSendTimes = (w: IceWorld, to: string) => w.agentSends.filter((s) => `${s.t.to.address}:${s.t.to.port}` === to && decodeBindingClass(s.t.data) === "request").map((s) => s.at);

function decodeBindingClass(data: Uint8Array): string {
  const m = decodeBinding(data);
  return "drop" in m ? m.drop : m.class;
}

describe("ICE agent (controlled)", () => {
  test("two host candidates: the controlling side's nomination selects the pair", () => {
    const { agent, peer, w } = world();
    connectHosts(agent, peer);
    w.run(1_000);
    expect(agent.state).toBe("connected");
    expect(agent.route).toEqual({ from: GW_HOST, to: CL_HOST });
    expect(agent.route).toBe(agent.route); // one object per selection: the data path reads it per packet
    const nominated = w.eventsOf("nominated");
    expect(nominated).toHaveLength(1);
    expect(nominated[0]!.event.pair.local).toMatchObject({ type: "host", address: "10.0.0.1", port: 52625 });
    expect(nominated[0]!.event.pair.remote).toMatchObject({ type: "host", address: "10.0.0.2", port: 40000 });
    expect(nominated[0]!.at).toBeLessThan(50);
    const transitions = w.eventsOf("pair_state").map((e) => `${e.event.from}->${e.event.to}`);
    expect(transitions).toEqual(["new->waiting", "waiting->in_progress", "in_progress->succeeded"]);
    // Our checks carry what RFC 8445 §7.1 asks for.
    const first = decodeBinding(w.agentSends.find((s) => decodeBindingClass(s.t.data) === "request")!.t.data);
    if ("drop" in first) throw new Error(first.drop);
    expect(first.username).toBe("cluf:gwuf");
    expect(first.iceControlled).toBeDefined();
    expect(first.iceControlling).toBeUndefined();
    expect(first.priority).toBe(localCandidate("prflx", "10.0.0.1", 1).priority);
    expect(first.useCandidate).toBe(false);
  });

  test("an unanswered check is retransmitted at 250 ms doubling to 1.5 s, 12 times, and fails at 15.25 s", () => {
    const { agent, peer, w } = world();
    peer.alive = false;
    connectHosts(agent, peer);
    w.run(30_000);
    expect(checkSendTimes(w, "10.0.0.2:40000")).toEqual([0, 250, 750, 1750, 3250, 4750, 6250, 7750, 9250, 10750, 12250, 13750]);
    const failedPair = w.eventsOf("pair_state").find((e) => e.event.to === "failed")!;
    expect(failedPair.at).toBe(15_250);
    // Every pair failed: disconnected, then failed once the 2 s grace is over.
    expect(w.stateChanges()).toEqual([
      { at: 15_250, state: "disconnected", reason: "every candidate pair failed" },
      { at: 17_250, state: "failed", reason: "disconnected for longer than the grace period" },
    ]);
    expect(agent.pollTimeout()).toBeUndefined();
  });

  test("a connection with nothing to check fails after 10 s", () => {
    const { agent, w } = world();
    agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), 0);
    w.run(9_999);
    expect(agent.state).toBe("checking");
    w.run(10_000);
    expect(w.stateChanges()).toEqual([{ at: 10_000, state: "failed", reason: "no candidates to check for 10 s" }]);
  });

  test("a candidate arriving within 10 s keeps the connection alive", () => {
    const { agent, peer, w } = world();
    agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), 0);
    w.run(9_000);
    agent.addRemoteCandidate(localCandidate("host", CL_HOST.address, CL_HOST.port), w.now);
    peer.addRemote(GW_HOST);
    w.run(12_000);
    expect(agent.state).toBe("connected");
  });

  test("the nominated pair is re-checked every 1.5 s while traffic flows", () => {
    const { agent, peer, w } = world();
    connectHosts(agent, peer);
    for (let t = 0; t <= 15_000; t += 5_000) {
      w.run(t);
      agent.noteTraffic(t);
    }
    w.run(15_000);
    const nominatedAt = w.eventsOf("nominated")[0]!.at;
    const consent = checkSendTimes(w, "10.0.0.2:40000").filter((t) => t > nominatedAt);
    const gaps = consent.slice(1).map((t, i) => t - consent[i]!);
    expect(gaps.length).toBeGreaterThanOrEqual(8);
    for (const g of gaps) expect(g).toBeCloseTo(1_500, 0);
    expect(agent.state).toBe("connected");
  });

  test("20 s without traffic makes the connection idle: checks every 25 s; traffic wakes it", () => {
    const { agent, peer, w } = world();
    connectHosts(agent, peer);
    w.run(100);
    const connectedAt = w.stateChanges().find((s) => s.state === "connected")!.at;
    w.run(200_000);
    expect(w.stateChanges().map((s) => s.state)).toEqual(["connected", "idle"]);
    const idleAt = w.stateChanges()[1]!.at;
    expect(idleAt).toBe(connectedAt + 20_000);
    const idleChecks = checkSendTimes(w, "10.0.0.2:40000").filter((t) => t > idleAt);
    const gaps = idleChecks.slice(1).map((t, i) => t - idleChecks[i]!);
    expect(gaps.length).toBeGreaterThan(5);
    for (const g of gaps) expect(g).toBe(25_000);
    agent.noteTraffic(w.now);
    expect(agent.state).toBe("connected");
    w.run(w.now + 100);
    expect(checkSendTimes(w, "10.0.0.2:40000").at(-1)).toBe(200_000); // re-checked at once
  });

  test("an idle connection whose peer vanished fails after 4 checks (100 s) and the 2 s grace", () => {
    const { agent, peer, w } = world();
    connectHosts(agent, peer);
    w.run(30_000);
    expect(agent.state).toBe("idle");
    peer.alive = false;
    const goneAt = w.now;
    w.run(300_000);
    const states = w.stateChanges();
    const disconnected = states.find((s) => s.state === "disconnected")!;
    const failed = states.find((s) => s.state === "failed")!;
    const unanswered = checkSendTimes(w, "10.0.0.2:40000").filter((t) => t > goneAt);
    expect(unanswered).toHaveLength(4);
    expect(disconnected.at - unanswered[0]!).toBe(100_000);
    expect(failed.at - disconnected.at).toBe(2_000);
  });

  test("an active connection whose peer vanished is disconnected after the 15.25 s ICE timeout", () => {
    const { agent, peer, w } = world();
    connectHosts(agent, peer);
    w.run(1_000);
    peer.alive = false;
    for (let t = 1_000; t <= 19_000; t += 1_000) {
      agent.noteTraffic(t);
      w.run(t);
    }
    w.run(25_000);
    const disconnected = w.stateChanges().find((s) => s.state === "disconnected")!;
    const firstUnanswered = checkSendTimes(w, "10.0.0.2:40000").find((t) => t > 1_000)!;
    expect(disconnected.at - firstUnanswered).toBe(15_250);
    expect(w.stateChanges().find((s) => s.state === "failed")!.at).toBe(disconnected.at + 2_000);
  });

  test("a candidate pair arriving during the disconnect grace brings the connection back", () => {
    const { agent, peer, w } = world();
    connectHosts(agent, peer);
    peer.alive = false; // its first address never works
    w.run(16_000);
    expect(agent.state).toBe("disconnected");
    peer.alive = true;
    peer.dropLocal(CL_HOST);
    peer.locals.push({ address: "10.0.0.3", port: 40001 });
    peer.addRemote(GW_HOST);
    agent.addRemoteCandidate(localCandidate("host", "10.0.0.3", 40001), w.now);
    w.run(25_000);
    expect(w.stateChanges().map((s) => s.state)).toEqual(["disconnected", "checking", "connected"]);
    expect(agent.route?.to).toEqual({ address: "10.0.0.3", port: 40001 });
  });

  test("checks start in priority order: host before srflx before relay", () => {
    const { agent, w } = world();
    agent.addLocalCandidate(localCandidate("relay", "198.51.100.1", 3000), 0, "relay-1");
    agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), 0);
    agent.addRemoteCandidate(localCandidate("srflx", "203.0.113.5", 41000, CL_HOST), 0);
    agent.addRemoteCandidate(localCandidate("host", CL_HOST.address, CL_HOST.port), 0);
    w.run(0);
    const order = w.agentSends.map((s) => `${s.t.relay ?? "host"}->${s.t.to.address}:${s.t.to.port}`);
    expect(order).toEqual([
      "host->10.0.0.2:40000",
      "host->203.0.113.5:41000",
      "host->203.0.113.5:40000", // optimistic: srflx IP × host port
      "relay-1->10.0.0.2:40000",
      "relay-1->203.0.113.5:41000",
      "relay-1->203.0.113.5:40000",
    ]);
    const relayed = w.agentSends.find((s) => s.t.relay === "relay-1")!;
    expect(relayed.t.from).toEqual({ address: "198.51.100.1", port: 3000 });
  });

  test("optimistic candidates: each remote srflx IP × remote host ports, IPv4 only, at most 2", () => {
    const { agent } = world();
    for (const [a, p] of [["192.168.1.2", 5000], ["192.168.1.3", 6000], ["192.168.1.4", 7000], ["fd00::2", 8000]] as const) {
      agent.addRemoteCandidate(localCandidate("host", a, p), 0);
    }
    agent.addRemoteCandidate(localCandidate("srflx", "2001:db8::9", 9999, { address: "fd00::2", port: 8000 }), 0);
    agent.addRemoteCandidate(localCandidate("srflx", "203.0.113.9", 40000, { address: "192.168.1.2", port: 5000 }), 0);
    const added: string[] = [];
    for (let e = agent.pollEvent(); e; e = agent.pollEvent()) {
      if (e.kind === "candidate" && e.candidate.optimistic) added.push(`${e.candidate.address}:${e.candidate.port}`);
    }
    expect(added).toEqual(["203.0.113.9:5000", "203.0.113.9:6000"]);
  });

  test("a faulty remote candidate is skipped with one log line", () => {
    const lines: LogLine[] = [];
    const { agent } = world({ log: lines });
    expect(agent.addRemoteCandidateText("candidate:1 1 tcp 1 10.0.0.9 9 typ host", 0)).toBeUndefined();
    expect(agent.addRemoteCandidateText("candidate:1 1 udp 2130706431 10.0.0.9 9 typ host", 0)?.address).toBe("10.0.0.9");
    const skipped = lines.filter((l) => l.msg === "remote candidate skipped");
    expect(skipped).toHaveLength(1);
    expect(skipped[0]!.reason).toMatch(/^transport:/);
  });

  test("invalidating the selected pair's candidate switches to another nominated pair, or disconnects", () => {
    const second = { address: "10.0.0.3", port: 40001 };
    const { agent, peer, w } = world({ peerLocals: [CL_HOST, second] });
    connectHosts(agent, peer);
    agent.addRemoteCandidate(localCandidate("host", second.address, second.port), 0);
    w.run(2_000);
    expect(agent.state).toBe("connected");
    const firstRoute = agent.route!.to;
    agent.invalidateRemoteCandidate(localCandidate("host", firstRoute.address, firstRoute.port), w.now);
    w.run(w.now + 10);
    // Only one pair was nominated, so nothing else may carry data yet: disconnected until the
    // controlling side nominates another (it stops using the first socket, as a client would).
    expect(w.stateChanges().map((s) => s.state)).toEqual(["connected", "disconnected"]);
    peer.dropLocal(firstRoute);
    w.run(w.now + 1_500);
    expect(agent.state).toBe("connected");
    expect(agent.route!.to).not.toEqual(firstRoute);
  });

  test("a check from an unknown source teaches a peer-reflexive candidate and triggers a check back", () => {
    const natted = { address: "203.0.113.50", port: 61000 };
    const { agent, w } = world();
    agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), 0);
    const req = encodeBindingRequest({ transactionId: new Uint8Array(12).fill(7), username: "gwuf:cluf", password: OURS.pwd, priority: 1853824767, iceControlling: 1n, useCandidate: true });
    expect(agent.handleInput(req, natted, GW_HOST, 0)).toBe("consumed");
    const learnt = [];
    for (let e = agent.pollEvent(); e; e = agent.pollEvent()) if (e.kind === "candidate" && e.action === "learned") learnt.push(e.candidate);
    expect(learnt).toEqual([{ type: "prflx", address: "203.0.113.50", port: 61000, priority: 1853824767 }]);
    const answer = decodeBinding(agent.pollTransmit()!.data);
    if ("drop" in answer) throw new Error(answer.drop);
    expect(answer.class).toBe("success");
    expect(answer.mapped).toEqual(natted);
    agent.handleTimeout(0);
    const check = agent.pollTransmit()!;
    expect(check.to).toEqual(natted);
    void w;
  });

  test("a peer-reflexive candidate the peer signals later takes the signalled type, without a second pair", () => {
    const natted = { address: "203.0.113.50", port: 61000 };
    const { agent } = world();
    agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), 0);
    const req = encodeBindingRequest({ transactionId: new Uint8Array(12).fill(4), username: "gwuf:cluf", password: OURS.pwd, priority: 1853824767, iceControlling: 1n });
    agent.handleInput(req, natted, GW_HOST, 0);
    const srflx = localCandidate("srflx", natted.address, natted.port, CL_HOST);
    agent.addRemoteCandidate(srflx, 10);
    expect(agent.pairs().map((p) => `${p.remote.type} ${p.remote.address}:${p.remote.port} ${p.remote.priority}`)).toEqual([`srflx 203.0.113.50:61000 ${srflx.priority}`]);
    agent.invalidateRemoteCandidate(srflx, 20);
    expect(agent.pairs()).toEqual([]);
  });

  test("a check from the peer on a pair still being checked sends ours again at once (its NAT just opened)", () => {
    const { agent } = world();
    agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), 0);
    agent.addRemoteCandidate(localCandidate("host", CL_HOST.address, CL_HOST.port), 0);
    agent.handleTimeout(0);
    const first = decodeBinding(agent.pollTransmit()!.data);
    if ("drop" in first) throw new Error(first.drop);
    expect(agent.pollTimeout()).toBe(250);
    const req = encodeBindingRequest({ transactionId: new Uint8Array(12).fill(9), username: "gwuf:cluf", password: OURS.pwd, priority: 1853824767, iceControlling: 1n });
    agent.handleInput(req, CL_HOST, GW_HOST, 100);
    expect(decodeBindingClass(agent.pollTransmit()!.data)).toBe("success");
    expect(agent.pollTimeout()).toBeLessThanOrEqual(100);
    agent.handleTimeout(100);
    const second = decodeBinding(agent.pollTransmit()!.data);
    if ("drop" in second) throw new Error(second.drop);
    expect(second.class).toBe("request");
    expect(second.transactionId).not.toEqual(first.transactionId);
    // The answer to the cancelled first transaction still proves the pair.
    const answer = encodeBindingSuccess(first.transactionId, GW_HOST, THEIRS.pwd);
    expect(agent.handleInput(answer, CL_HOST, GW_HOST, 120)).toBe("consumed");
    expect(agent.pairs()[0]!.state).toBe("succeeded");
  });

  test("a relay candidate: checks and data go out tagged with the allocation, answers come back through it", () => {
    const relayed = { address: "198.51.100.1", port: 3000 };
    const { agent, peer, w } = world();
    agent.addLocalCandidate(localCandidate("relay", relayed.address, relayed.port), 0);
    agent.addRemoteCandidate(localCandidate("host", CL_HOST.address, CL_HOST.port), 0);
    peer.addRemote(relayed);
    w.run(2_000);
    expect(agent.state).toBe("connected");
    expect(agent.route).toEqual({ from: relayed, relay: "198.51.100.1:3000", to: CL_HOST });
    expect(w.eventsOf("nominated")[0]!.event.pair.local).toMatchObject({ type: "relay", relay: "198.51.100.1:3000" });
    expect(w.agentSends.every((s) => s.t.relay === "198.51.100.1:3000")).toBe(true);
  });

  test("one wildcard socket with two host addresses: answers for either candidate are accepted", () => {
    const { agent } = world();
    agent.addLocalCandidate(localCandidate("host", "10.0.0.1", 52625), 0);
    agent.addLocalCandidate(localCandidate("host", "192.168.9.1", 52625), 0);
    agent.addRemoteCandidate(localCandidate("host", CL_HOST.address, CL_HOST.port), 0);
    agent.handleTimeout(0);
    const wildcard = { address: "0.0.0.0", port: 52625 };
    for (let t = agent.pollTransmit(); t; t = agent.pollTransmit()) {
      const check = decodeBinding(t.data);
      if ("drop" in check) throw new Error(check.drop);
      expect(agent.handleInput(encodeBindingSuccess(check.transactionId, t.from, THEIRS.pwd), CL_HOST, wildcard, 5)).toBe("consumed");
    }
    expect(agent.pairs().map((p) => p.state)).toEqual(["succeeded", "succeeded"]);
    expect(agent.drops.response_from_elsewhere).toBe(0);
  });

  test("the node can route a Binding message to its agent: requests by ufrag, responses by transaction", () => {
    const { agent } = world();
    agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), 0);
    agent.addRemoteCandidate(localCandidate("host", CL_HOST.address, CL_HOST.port), 0);
    agent.handleTimeout(0);
    const check = decodeBinding(agent.pollTransmit()!.data);
    if ("drop" in check) throw new Error(check.drop);
    const answer = decodeBinding(encodeBindingSuccess(check.transactionId, GW_HOST, THEIRS.pwd));
    if ("drop" in answer) throw new Error(answer.drop);
    const route = bindingRoute(answer);
    expect(route && "transaction" in route && agent.ownsTransaction(route.transaction)).toBe(true);
    const req = decodeBinding(encodeBindingRequest({ transactionId: new Uint8Array(12), username: "gwuf:cluf", password: OURS.pwd, priority: 1, iceControlling: 1n }));
    if ("drop" in req) throw new Error(req.drop);
    expect(bindingRoute(req)).toEqual({ ufrag: "gwuf" });
    expect(agent.handleBinding(answer, CL_HOST, GW_HOST, 5)).toBe("consumed");
    expect(agent.pairs()[0]!.state).toBe("succeeded");
  });

  test("checks with a wrong password or for another connection are refused", () => {
    const { agent } = world();
    agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), 0);
    const bad = encodeBindingRequest({ transactionId: new Uint8Array(12).fill(1), username: "gwuf:cluf", password: "wrong", priority: 1, iceControlling: 1n });
    expect(agent.handleInput(bad, CL_HOST, GW_HOST, 0)).toBe("consumed");
    expect(agent.drops.bad_integrity).toBe(1);
    const other = encodeBindingRequest({ transactionId: new Uint8Array(12).fill(2), username: "other:cluf", password: OURS.pwd, priority: 1, iceControlling: 1n });
    expect(agent.handleInput(other, CL_HOST, GW_HOST, 0)).toBe("not_mine");
    const notStun = new Uint8Array(148);
    notStun[0] = 1;
    expect(agent.handleInput(notStun, CL_HOST, GW_HOST, 0)).toBe("not_mine");
    expect(agent.pollTransmit()).toBeUndefined();
  });

  test("a peer that also claims the controlled role gets 487 Role Conflict", () => {
    const { agent } = world();
    agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), 0);
    const req = encodeBindingRequest({ transactionId: new Uint8Array(12).fill(3), username: "gwuf:cluf", password: OURS.pwd, priority: 1, iceControlled: 5n });
    agent.handleInput(req, CL_HOST, GW_HOST, 0);
    const answer = decodeBinding(agent.pollTransmit()!.data);
    if ("drop" in answer) throw new Error(answer.drop);
    expect(answer.class).toBe("error");
    expect(answer.errorCode).toBe(487);
  });

  test("ten simulated minutes of bursts and pauses: idle and awake in turn, never disconnected", () => {
    const { agent, peer, w } = world({ link: { loss: 0.05, jitterMs: 20 } });
    connectHosts(agent, peer);
    // Traffic for a minute, silence for a minute and a half, and so on.
    for (let t = 0; t < 600_000; t += 1_000) {
      if (t % 150_000 < 60_000) agent.noteTraffic(t);
      w.run(t);
    }
    const states = w.stateChanges().map((s) => s.state);
    expect(states.filter((s) => s === "disconnected" || s === "failed")).toEqual([]);
    expect(states.filter((s) => s === "idle").length).toBe(4);
    // Idle costs one check per 25 s, not one per 1.5 s.
    const idleSpans = w.stateChanges().filter((s) => s.state === "idle").map((s) => s.at);
    const checksWhileIdle = checkSendTimes(w, "10.0.0.2:40000").filter((t) => idleSpans.some((start) => t > start && t < start + 70_000)).length;
    expect(checksWhileIdle).toBeLessThan(4 * 5);
  });

  test("checks that arrive before the peer's credentials are answered, and ours follow once they are known", () => {
    const agent = new IceAgent({ local: OURS, now: 0, random: seeded(3) });
    agent.addLocalCandidate(localCandidate("host", GW_HOST.address, GW_HOST.port), 0);
    agent.addRemoteCandidate(localCandidate("host", CL_HOST.address, CL_HOST.port), 0);
    agent.handleTimeout(0);
    expect(agent.pollTransmit()).toBeUndefined(); // nothing to sign our checks with yet
    const req = encodeBindingRequest({ transactionId: new Uint8Array(12).fill(6), username: "gwuf:cluf", password: OURS.pwd, priority: 1853824767, iceControlling: 1n, useCandidate: true });
    expect(agent.handleInput(req, CL_HOST, GW_HOST, 10)).toBe("consumed");
    expect(decodeBindingClass(agent.pollTransmit()!.data)).toBe("success");
    agent.setRemoteCredentials(THEIRS);
    expect(agent.pollTimeout()).toBe(0);
    agent.handleTimeout(20);
    const check = decodeBinding(agent.pollTransmit()!.data);
    if ("drop" in check) throw new Error(check.drop);
    expect(check.username).toBe("cluf:gwuf");
    agent.handleInput(encodeBindingSuccess(check.transactionId, GW_HOST, THEIRS.pwd), CL_HOST, GW_HOST, 30);
    expect(agent.state).toBe("connected");
  });

  test("over a lossy link (30 % loss, duplicates, reordering) the pair is still nominated", () => {
    const times: number[] = [];
    for (let seed = 1; seed <= 20; seed++) {
      const { agent, peer, w } = world({ seed, link: { loss: 0.3, duplicate: 0.2, jitterMs: 300, delayMs: 20 } });
      connectHosts(agent, peer);
      w.run(15_000);
      expect(agent.state).toBe("connected");
      times.push(w.eventsOf("nominated")[0]!.at);
      // Keep it busy through the loss for a simulated minute: consent survives 30 % loss.
      for (let t = 15_000; t <= 75_000; t += 5_000) {
        agent.noteTraffic(t);
        w.run(t);
      }
      expect(agent.state).toBe("connected");
    }
    expect(Math.max(...times)).toBeLessThan(15_000);
  });
});
