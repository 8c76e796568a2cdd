// Sentry for real: @sentry/bun sends envelopes to a DSN that points at a local Bun.serve, which
// parses them the way Sentry's ingest would.
import { afterAll, expect, test } from "bun:test";
import { encodeKey, generatePrivateKey, keyToU256Decimal, publicKeyOf } from "../crypto/x25519.ts";
import { LogRing } from "./log-ring.ts";
import { Logger, parseLogFilter } from "./log.ts";
import { reportingSink, SentryReporter } from "./sentry.ts";
import type { ConnectionView } from "./view.ts";

const envelopes: { items: { header: Record<string, unknown>; payload: Record<string, unknown> }[] }[] = [];
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const url = new URL(req.url);
    if (url.pathname === "/api/4242/envelope/") {
      const lines = (await req.text()).split("\n").filter(Boolean);
      const items = [];
      for (let i = 1; i + 1 < lines.length; i += 2) items.push({ header: JSON.parse(lines[i]!), payload: JSON.parse(lines[i + 1]!) });
      envelopes.push({ items });
    }
    return Response.json({});
  },
});
afterAll(() => server.stop(true));

test("an error log line reaches Sentry with cid tags, the connection context and a per-key fingerprint", async () => {
  const publicKey = encodeKey(publicKeyOf(generatePrivateKey()));
  const conn: ConnectionView = {
    cid: 3428714, public_key: publicKey, endpoint: "192.0.2.7:51820", sessions: ["3428714|1"], last_handshake: "2026-11-28T00:00:00.000Z",
    rx_bytes: 0, tx_bytes: 0, rx_packets: 0, tx_packets: 0, handshakes: { initiated: 0, completed: 1, failed: 0, confirmed: 1 }, allowed_ips: [], drops: {}, state: "connected",
    state_since: "2026-11-28T00:00:00.000Z",
  };
  const reporter = new SentryReporter({
    dsn: `http://abc123@127.0.0.1:${server.port}/4242`,
    adminUrl: "http://127.0.0.1:8080",
    connection: (cid) => (cid === conn.cid ? conn : undefined),
  });
  const ring = new LogRing(10);
  const log = new Logger(parseLogFilter("info"), reportingSink(reporter, ring.sink)).target("tunnel");
  log.info("not an error", { cid: conn.cid });
  log.error("decrypt failed repeatedly", { cid: conn.cid, rid: "res-1", err: new Error("outer", { cause: new Error("inner") }) });
  expect(await reporter.flush()).toBe(true);

  const line = ring.query({ level: "error" })[0]!;
  expect(line.sentry_event_id).toMatch(/^[0-9a-f]{32}$/);
  const events = envelopes.flatMap((e) => e.items).filter((i) => i.header.type === "event").map((i) => i.payload);
  expect(events).toHaveLength(1);
  const ev = events[0] as { event_id: string; tags: Record<string, string>; contexts: Record<string, Record<string, unknown>>; fingerprint: string[]; exception: { values: { value: string }[] } };
  expect(ev.event_id).toBe(line.sentry_event_id as string);
  expect(ev.tags).toMatchObject({ cid: "3428714", rid: "res-1", target: "tunnel", public_key: keyToU256Decimal(Buffer.from(publicKey, "base64")) });
  expect(ev.contexts.connection).toMatchObject({ cid: 3428714, session: "3428714|1", endpoint: "192.0.2.7:51820", state: "connected", admin: "http://127.0.0.1:8080/connections/3428714" });
  expect(ev.fingerprint).toEqual(["{{ default }}", keyToU256Decimal(Buffer.from(publicKey, "base64"))]);
  expect(ev.exception.values[0]!.value).toBe("decrypt failed repeatedly: outer: inner");
  // The stack is the thrown error's (this test file), not the reporter's.
  const frames = (ev.exception.values[0] as unknown as { stacktrace: { frames: { filename: string }[] } }).stacktrace.frames.map((f) => f.filename);
  expect(frames.some((f) => f.endsWith("sentry.test.ts"))).toBe(true);
  expect(frames.some((f) => f.endsWith("sentry.ts"))).toBe(false);
  await reporter.close();
});

test("a flood of the same error becomes a few Sentry events per minute, the rest counted and reported with the next event", async () => {
  envelopes.length = 0;
  let now = 0;
  let lookups = 0;
  const reporter = new SentryReporter({ dsn: `http://abc123@127.0.0.1:${server.port}/4242`, clock: () => now, connection: () => void lookups++ });
  const ring = new LogRing(2000);
  const log = new Logger(parseLogFilter("info"), reportingSink(reporter, ring.sink)).target("dns");
  for (let i = 0; i < 1000; i++) log.error("upstream reply rejected", { cid: 7, remote: `192.0.2.${i % 250}:53` });
  log.error("another failure");
  now += 60_000;
  log.error("upstream reply rejected", { cid: 7, remote: "192.0.2.1:53" });
  expect(await reporter.flush()).toBe(true);

  const events = envelopes.flatMap((e) => e.items).filter((i) => i.header.type === "event").map((i) => i.payload as { exception: { values: { value: string }[] }; extra: Record<string, unknown> });
  const flood = events.filter((e) => e.exception.values[0]!.value === "upstream reply rejected");
  expect(flood).toHaveLength(6); // 5 in the first minute, 1 in the next
  expect(flood.map((e) => e.extra.suppressed_since_last)).toEqual([undefined, undefined, undefined, undefined, undefined, 995]);
  expect(events.filter((e) => e.exception.values[0]!.value === "another failure")).toHaveLength(1);
  expect(reporter.suppressed).toBe(995);
  expect(lookups).toBe(6); // a held-back line does not walk the connections
  // The limit is per peer: another connection's errors are reported too.
  log.error("upstream reply rejected", { cid: 8 });
  // Every line is still in the log, with an event id only when one was sent.
  expect(ring.query({ level: "error", limit: 2000 })).toHaveLength(1003);
  expect(ring.query({ level: "error", limit: 2000 }).filter((l) => l.sentry_event_id)).toHaveLength(8);
  await reporter.close();
});

test("a named problem is one Sentry event grouped by kind and peer, linking to the connection through the public admin URL, with the stack of its detection", async () => {
  envelopes.length = 0;
  const { ProblemDetector } = await import("./problems.ts");
  const publicKey = encodeKey(publicKeyOf(generatePrivateKey()));
  const reporter = new SentryReporter({ dsn: `http://abc123@127.0.0.1:${server.port}/4242`, adminUrl: "http://127.0.0.1:8080", publicAdminUrl: "https://gw.example.net/admin/" });
  reporter.gid = "gid-1";
  // Detected on simulated time: a peer that never connected within a 1 s grace.
  const detector = new ProblemDetector({ gatewayPublicKey: publicKey, neverConnectedMs: 1000 });
  detector.peerAdded(77, publicKey, 0);
  const tunnel = { handshakeDropsSince: () => [], connections: () => [{ cid: 77, publicKey, allowedIPs: [], rejectedSources: { count: 0, last: new Uint8Array(16), family: 0 } }][Symbol.iterator]() };
  for (let now = 0; now <= 5000; now += 1000) detector.sample(tunnel as never, now);
  const problems = detector.problems();
  expect(problems).toHaveLength(1);
  for (let ch = detector.pollChange(); ch; ch = detector.pollChange()) if (ch.type === "appeared") reporter.reportProblem(ch.problem);
  // The same problem of the same peer coming back (cleared, raised again) is not a second event.
  expect(reporter.reportProblem(problems[0]!)).toBeUndefined();
  expect(await reporter.flush()).toBe(true);

  const events = envelopes.flatMap((e) => e.items).filter((i) => i.header.type === "event").map((i) => i.payload) as { tags: Record<string, string>; contexts: Record<string, Record<string, unknown>>; fingerprint: string[]; exception: { values: { type: string; value: string; stacktrace: { frames: { filename: string; function?: string }[] } }[] } }[];
  expect(events).toHaveLength(1);
  const u256 = keyToU256Decimal(Buffer.from(publicKey, "base64"));
  expect(events[0]!.fingerprint).toEqual(["never_connected", u256]);
  expect(events[0]!.tags).toMatchObject({ cid: "77", gid: "gid-1", public_key: u256, problem: "never_connected" });
  expect(events[0]!.contexts.connection!.admin).toBe("https://gw.example.net/admin/connections/77");
  expect(events[0]!.contexts.problem).toMatchObject({ kind: "never_connected", fix: problems[0]!.fix });
  const frames = events[0]!.exception.values[0]!.stacktrace.frames.map((f) => f.filename);
  expect(frames.some((f) => f.endsWith("problems.ts"))).toBe(true);
  expect(frames.some((f) => f.endsWith("sentry.ts"))).toBe(false);
  await reporter.close();
});
