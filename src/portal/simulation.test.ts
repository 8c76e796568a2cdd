// A seeded, simulated portal that misbehaves at random — refused and failed connects, stalled
// joins, dropped sockets, phx_close, garbage, unanswered heartbeats, crashed channels — driving
// the channel on a fake clock for 30 simulated minutes per seed. After every step the channel's
// promises must hold: each socket starts with phx_join ref 0, refs count up by one, nothing but a
// join or heartbeat goes out before the join is answered, a joined socket is never silent for more
// than a heartbeat interval, nothing is fatal, and every message the application sent goes out
// exactly once or is reported dropped.
import { expect, test } from "bun:test";
import { HEARTBEAT_INTERVAL_MS } from "./constants.ts";
import { gatewayChannel, type GatewayChannel } from "./index.ts";

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Pending {
  at: number;
  socket: number;
  run: () => void;
}

function simulate(seed: number, minutes: number) {
  const rnd = mulberry32(seed);
  const ch: GatewayChannel = gatewayChannel({ random: mulberry32(seed ^ 0x9e3779b9) });
  let now = 0;
  let socket = 0; // generation; 0 = none
  let open = false;
  let faults = true;
  let portalForgot = false;
  const pending: Pending[] = [];
  const failures: string[] = [];
  const fail = (why: string): void => void failures.push(`seed ${seed} t=${now}: ${why}`);

  // per-socket bookkeeping
  let expectRef = 0;
  let joined = false;
  let lastFrameAt = 0;
  const written = new Map<string, number>();
  let sent = 0;
  let dropped = 0;
  let joins = 0;

  const later = (ms: number, run: () => void): void => void pending.push({ at: now + ms, socket, run });
  const lat = () => 1 + Math.floor(rnd() * 200);

  const reply = (topic: string, ref: number, status: "ok" | "error", response: unknown) =>
    later(lat(), () => ch.handleMessage(JSON.stringify({ topic, event: "phx_reply", payload: { status, response }, ref }), now));

  function onFrame(text: string): void {
    const f = JSON.parse(text) as { topic: string; event: string; payload: { ref?: string }; ref: number };
    if (!open) return fail(`frame ${f.event} with no socket open`);
    if (f.ref !== expectRef) fail(`ref ${f.ref}, expected ${expectRef}`);
    expectRef = f.ref + 1;
    if (f.ref === 0 && f.event !== "phx_join") fail(`first frame is ${f.event}`);
    if (now - lastFrameAt > HEARTBEAT_INTERVAL_MS) fail(`a frame after ${now - lastFrameAt} ms of silence`);
    lastFrameAt = now;
    if (f.event === "phx_join") {
      joined = false;
      portalForgot = false;
      if (faults && rnd() < 0.1) return; // stalled join
      return reply("gateway", f.ref, "ok", {});
    }
    if (f.event === "heartbeat") {
      if (faults && rnd() < 0.05) return; // lost reply
      return reply("phoenix", f.ref, "ok", {});
    }
    if (!joined) fail(`${f.event} before the join was answered`);
    const id = f.payload.ref!;
    written.set(id, (written.get(id) ?? 0) + 1);
    if (portalForgot) reply("gateway", f.ref, "error", { reason: "unmatched topic" });
  }

  function drain(): void {
    for (let ev = ch.pollEvent(); ev; ev = ch.pollEvent()) {
      switch (ev.kind) {
        case "open":
          socket++;
          open = false;
          expectRef = 0;
          joined = false;
          later(lat(), () => {
            const r = rnd();
            if (faults && r < 0.1) ch.handleDisconnected({ kind: "error", message: "ECONNREFUSED" }, now);
            else if (faults && r < 0.15) ch.handleDisconnected({ kind: "http", status: 502 }, now);
            else {
              open = true;
              lastFrameAt = now;
              ch.handleConnected(now);
            }
          });
          break;
        case "close":
          socket++; // whatever was pending for the old socket is void
          open = false;
          break;
        case "joined":
          joins++;
          joined = true;
          break;
        case "dropped":
          dropped++;
          break;
        case "fatal":
          fail(`fatal: ${ev.message}`);
          break;
        case "message":
        case "malformed":
        case "reconnect_scheduled":
        case "error_reply":
          break;
      }
    }
    for (let f = ch.pollSend(); f !== undefined; f = ch.pollSend()) onFrame(f);
  }

  /** Portal-side mischief on an open socket. */
  function mischief(): void {
    const r = rnd();
    const sock = socket;
    const stillOpen = () => open && socket === sock;
    if (r < 0.25) {
      open = false;
      socket++;
      ch.handleDisconnected({ kind: "closed", code: 1006 }, now);
    } else if (r < 0.4) ch.handleMessage(JSON.stringify({ topic: "gateway", event: "phx_close", payload: {}, ref: null }), now);
    else if (r < 0.7) ch.handleMessage("\u0000garbage", now);
    else if (stillOpen()) portalForgot = true;
  }

  ch.connect(now);
  drain();
  const end = minutes * 60_000;
  while (now < end + 200_000) {
    if (now >= end) faults = false; // a calm tail: everything buffered must get out
    const step = 1 + Math.floor(rnd() * 3_000);
    const target = now + step;
    // fire timers and deliveries in time order up to target
    for (;;) {
      pending.sort((a, b) => a.at - b.at);
      const nextPending = pending[0]?.at ?? Infinity;
      const nextTimer = ch.pollTimeout() ?? Infinity;
      const next = Math.min(nextPending, nextTimer);
      if (next > target) break;
      now = Math.max(now, next);
      if (nextPending <= nextTimer) {
        const p = pending.shift()!;
        if (p.socket === socket) p.run();
      } else ch.handleTimeout(now);
      drain();
      if (open && joined && now - lastFrameAt > HEARTBEAT_INTERVAL_MS) fail(`silent for ${now - lastFrameAt} ms while joined`);
    }
    now = target;
    if (open && joined && now - lastFrameAt > HEARTBEAT_INTERVAL_MS) fail(`silent for ${now - lastFrameAt} ms while joined`);
    const r = rnd();
    if (r < 0.3) {
      ch.send({ event: "flow_authorized", payload: { ref: `m${sent++}` } }, now);
      drain();
    } else if (faults && open && r < 0.33) {
      mischief();
      drain();
    }
    const st = ch.stats().state;
    if (st !== "closed" && st !== "idle" && ch.pollTimeout() === undefined) fail(`state ${st} with no timer`);
  }
  for (const [id, n] of written) if (n !== 1) fail(`${id} written ${n} times`);
  if (written.size + dropped !== sent) fail(`sent ${sent}, written ${written.size}, dropped ${dropped}`);
  return { failures, joins, sent, dropped, malformed: ch.stats().malformed, reconnects: ch.stats().reconnects };
}

test("30 simulated minutes of a misbehaving portal, 40 seeds: every promise of the channel holds", () => {
  let joins = 0;
  let reconnects = 0;
  let malformed = 0;
  let dropped = 0;
  const failures: string[] = [];
  for (let seed = 1; seed <= 40; seed++) {
    const r = simulate(seed, 30);
    failures.push(...r.failures);
    joins += r.joins;
    reconnects += r.reconnects;
    malformed += r.malformed;
    dropped += r.dropped;
  }
  expect(failures.slice(0, 10)).toEqual([]);
  // the faults really happened
  expect(joins).toBeGreaterThan(40 * 10);
  expect(reconnects).toBeGreaterThan(40 * 10);
  expect(malformed).toBeGreaterThan(40);
  expect(dropped).toBeGreaterThanOrEqual(0);
});
