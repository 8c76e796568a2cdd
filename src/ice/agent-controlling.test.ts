// Our controlling IceAgent against our controlled one (the gateway's), on simulated time over a
// seeded link: regular nomination, failover to the pair that works, a lossy link for ten minutes,
// and role conflicts settled by the tie-breaker.
import { describe, expect, test } from "bun:test";
import { IcePairWorld } from "../../test/support/ice-pair-world.ts";
import { seededFloats, type LinkConditions } from "../../test/support/sim-link.ts";
import { IceAgent } from "./agent.ts";
import { decodeBinding, encodeBindingRequest } from "./agent-messages.ts";
import type { IceRole } from "./agent-role.ts";
import { localCandidate } from "./candidate.ts";

const CLIENT = { ufrag: "cluf", pwd: "client-password-0123456789ab" };
const GATEWAY = { ufrag: "gwuf", pwd: "gateway-password-0123456789" };

function seeded(seed: number): (b: Uint8Array) => void {
  const f = seededFloats(seed);
  return (b) => {
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(f() * 256);
  };
}

type Hosts = { address: string; port: number }[];

function pair(opts: { link?: LinkConditions; seed?: number; clientHosts?: Hosts; gatewayHosts?: Hosts; clientRole?: IceRole; gatewayRole?: IceRole } = {}) {
  const seed = opts.seed ?? 1;
  const client = new IceAgent({ local: CLIENT, remote: GATEWAY, now: 0, random: seeded(seed * 7 + 1), cid: "client", role: opts.clientRole ?? "controlling" });
  const gateway = new IceAgent({ local: GATEWAY, remote: CLIENT, now: 0, random: seeded(seed * 7 + 2), cid: "gateway", ...(opts.gatewayRole ? { role: opts.gatewayRole } : {}) });
  const w = new IcePairWorld(client, gateway, opts.link ?? {}, seed);
  const clientHosts = opts.clientHosts ?? [{ address: "10.0.0.2", port: 40000 }];
  const gatewayHosts = opts.gatewayHosts ?? [{ address: "10.0.0.1", port: 52625 }];
  // What the portal relays: each side's host candidates to the other.
  for (const h of clientHosts) gateway.addRemoteCandidate(localCandidate("host", h.address, h.port), 0);
  for (const h of gatewayHosts) client.addRemoteCandidate(localCandidate("host", h.address, h.port), 0);
  for (const h of clientHosts) client.addLocalCandidate(localCandidate("host", h.address, h.port), 0);
  for (const h of gatewayHosts) gateway.addLocalCandidate(localCandidate("host", h.address, h.port), 0);
  return { client, gateway, w };
}

function requestsOf(w: IcePairWorld, side: "a" | "b") {
  return w.sends.flatMap((s) => {
    if (s.side !== side) return [];
    const m = decodeBinding(s.data);
    return "drop" in m || m.class !== "request" ? [] : [{ at: s.at, to: s.to, msg: m }];
  });
}

describe("ICE agent (controlling) against our controlled agent", () => {
  test("a check succeeds, then a USE-CANDIDATE check nominates the pair: both sides carry data on it", () => {
    const { client, gateway, w } = pair();
    w.run(1_000);
    expect(client.role).toBe("controlling");
    expect(client.state).toBe("connected");
    expect(gateway.state).toBe("connected");
    expect(client.route).toEqual({ from: { address: "10.0.0.2", port: 40000 }, to: { address: "10.0.0.1", port: 52625 } });
    expect(gateway.route).toEqual({ from: { address: "10.0.0.1", port: 52625 }, to: { address: "10.0.0.2", port: 40000 } });
    const checks = requestsOf(w, "a");
    // The first check carries ICE-CONTROLLING and no USE-CANDIDATE; the nominating one follows its answer.
    expect(checks[0]!.msg.iceControlling).toBeDefined();
    expect(checks[0]!.msg.iceControlled).toBeUndefined();
    expect(checks[0]!.msg.useCandidate).toBe(false);
    expect(checks[0]!.msg.username).toBe("gwuf:cluf");
    const nominating = checks.find((c) => c.msg.useCandidate)!;
    expect(nominating.at).toBeGreaterThan(checks[0]!.at);
    // The gateway selects when it sees USE-CANDIDATE; the client once that check is answered.
    expect(w.eventsOf("a", "nominated")).toHaveLength(1);
    expect(w.eventsOf("b", "nominated")).toHaveLength(1);
    expect(w.eventsOf("a", "nominated")[0]!.at).toBeLessThan(50);
    expect(client.drops.role_conflict + gateway.drops.role_conflict).toBe(0);
  });

  test("pair priorities agree on both sides (G is the controlling side's candidate)", () => {
    const { client, gateway, w } = pair({ clientHosts: [{ address: "10.0.0.2", port: 40000 }, { address: "10.9.0.2", port: 40000 }] });
    w.run(1_000);
    const byEnds = (views: ReturnType<IceAgent["pairs"]>, mine: "local" | "remote") => new Map(views.map((v) => [`${v[mine].address}`, v.priority]));
    const c = byEnds(client.pairs(), "local");
    const g = byEnds(gateway.pairs(), "remote");
    expect(c.size).toBe(2);
    for (const [addr, prio] of c) expect(g.get(addr)).toBe(prio);
  });

  test("only one of two paths works: the controlling side nominates it and both use it", () => {
    const { client, gateway, w } = pair({ clientHosts: [{ address: "10.0.0.2", port: 40000 }, { address: "192.168.1.2", port: 40000 }] });
    w.blackholed.add("10.0.0.2"); // the better-ranked address is firewalled
    w.run(20_000);
    expect(client.route?.from.address).toBe("192.168.1.2");
    expect(gateway.route?.to.address).toBe("192.168.1.2");
    expect(client.state).toBe("connected");
    expect(gateway.state).toBe("connected");
  });

  test("a better pair that starts working later is nominated too, and both move to it", () => {
    const { client, gateway, w } = pair({ clientHosts: [{ address: "10.0.0.2", port: 40000 }, { address: "192.168.1.2", port: 40000 }] });
    w.blackholed.add("10.0.0.2");
    w.run(2_000);
    expect(client.route?.from.address).toBe("192.168.1.2");
    w.blackholed.delete("10.0.0.2");
    w.run(20_000);
    const best = client.pairs()[0]!;
    expect(best.local.address).toBe("10.0.0.2");
    expect(client.route?.from.address).toBe(best.local.address);
    expect(gateway.route?.to.address).toBe(best.local.address);
  });

  test("the path dies: consent fails on both sides after the ICE timeout", () => {
    const { client, gateway, w } = pair();
    w.run(1_000);
    for (let t = 1_000; t <= 10_000; t += 1_000) {
      w.run(t);
      client.noteTraffic(t);
      gateway.noteTraffic(t);
    }
    w.blackholed.add("10.0.0.1");
    w.run(60_000);
    expect(client.state).toBe("failed");
    expect(gateway.state).toBe("failed");
  });

  for (const seed of [1, 2, 3, 4, 5]) {
    test(`lossy link (20 % loss, duplicates, reordering), seed ${seed}: connected within 20 s and for ten minutes of bursts and pauses`, () => {
      const { client, gateway, w } = pair({ seed, link: { loss: 0.2, duplicate: 0.05, jitterMs: 40, delayMs: 10 } });
      w.run(20_000);
      expect(client.state).toBe("connected");
      expect(gateway.state).toBe("connected");
      // Bursts of traffic and idle pauses in turn, both sides noting it, as the data path does.
      const rnd = seededFloats(seed + 100);
      let t = 20_000;
      while (t < 620_000) {
        const burstEnd = t + 5_000 + rnd() * 30_000;
        for (; t < burstEnd; t += 1_000) {
          w.run(t);
          client.noteTraffic(t);
          gateway.noteTraffic(t);
        }
        t += rnd() * 60_000;
        w.run(t);
      }
      expect(w.states("a")).not.toContain("disconnected");
      expect(w.states("b")).not.toContain("disconnected");
      expect(client.route?.to).toEqual(gateway.route?.from);
      expect(gateway.route?.to).toEqual(client.route?.from);
    });
  }
});

describe("ICE role conflicts", () => {
  test("both sides controlling: the larger tie-breaker keeps control, the other switches, and they connect", () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const { client, gateway, w } = pair({ seed, gatewayRole: "controlling" });
      w.run(5_000);
      expect([client.role, gateway.role].sort()).toEqual(["controlled", "controlling"]);
      expect(client.state).toBe("connected");
      expect(gateway.state).toBe("connected");
      expect(client.route?.to).toEqual(gateway.route?.from);
      expect(client.drops.role_conflict + gateway.drops.role_conflict).toBeGreaterThan(0);
    }
  });

  test("a client that lost a conflict and went controlled meets the gateway: the gateway's 487 gives it control back, and they connect", () => {
    const { client, gateway, w } = pair();
    // A request claiming control with the largest tie-breaker there is: the client gives way.
    const claim = encodeBindingRequest({ transactionId: new Uint8Array(12).fill(7), username: "cluf:gwuf", password: CLIENT.pwd, priority: 1, iceControlling: 2n ** 64n - 1n });
    client.handleInput(claim, { address: "10.0.0.1", port: 52625 }, { address: "10.0.0.2", port: 40000 }, 0);
    expect(client.role).toBe("controlled");
    w.run(5_000);
    expect(gateway.role).toBe("controlled"); // the gateway's role is fixed
    expect(gateway.drops.role_conflict).toBeGreaterThan(0);
    expect(client.role).toBe("controlling");
    expect(client.state).toBe("connected");
    expect(gateway.state).toBe("connected");
  });

  test("the gateway never takes control: two agents created controlled answer each other with 487 and never connect", () => {
    const { client, gateway, w } = pair({ clientRole: "controlled" });
    w.run(30_000);
    expect(gateway.role).toBe("controlled");
    expect(client.role).toBe("controlled");
    expect(gateway.drops.role_conflict).toBeGreaterThan(0);
    expect(gateway.state).not.toBe("connected");
    expect(w.states("b")).not.toContain("connected");
  });
});
