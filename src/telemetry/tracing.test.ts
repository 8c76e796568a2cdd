import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAdminApp } from "../../admin/app.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { Store } from "../store/index.ts";
import type { TunnelEvent } from "../tunnel/index.ts";
import { WirePair } from "../../test/support/wire-pair.ts";
import { sessionField } from "../wire/index.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "./log.ts";
import { Telemetry } from "./otel.ts";
import { HandshakeSpans, traceStoreWrites, withSpan } from "./tracing.ts";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

// OTLP/JSON ExportTraceServiceRequest, the parts we check.
type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean };
type OtlpAttr = { key: string; value: OtlpValue };
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpAttr[];
  status?: { code?: number; message?: string };
}
interface OtlpTraces {
  resourceSpans: { resource: { attributes: OtlpAttr[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}
const attr = (attrs: OtlpAttr[], key: string) => {
  const v = attrs.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : v?.boolValue);
};

/** A local OTLP/HTTP receiver; resolves the decoded requests the real exporter sent it. */
function receiver() {
  const requests: { type: string; body: OtlpTraces }[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      if (new URL(req.url).pathname === "/v1/traces") {
        requests.push({ type: req.headers.get("content-type") ?? "", body: JSON.parse(await req.text()) as OtlpTraces });
      }
      return new Response("{}", { headers: { "content-type": "application/json" } });
    },
  });
  cleanup.push(() => server.stop(true));
  return { url: `http://127.0.0.1:${server.port}/v1/traces`, requests };
}

const spansOf = (requests: { body: OtlpTraces }[]) => requests.flatMap((r) => r.body.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans)));
const GID = "5f0c2a7e-3b1d-4c8e-9a6f-0d2b4e6c8a10";

test("traces reach an OTLP receiver: a responder's handshake span from initiation to key confirmation, with cid, session, remote and role", async () => {
  const rx = receiver();
  const telemetry = new Telemetry({ gid: GID, tracesUrl: rx.url });
  cleanup.push(() => telemetry.shutdown());
  const spans = new HandshakeSpans(telemetry.tracer);
  const lines: LogLine[] = [];
  const log = new Logger(parseLogFilter("info"), memorySink(lines)).target("tunnel");

  // b answers a's initiation; a's first packet (a keepalive) confirms b's session 74 ms later.
  const w = new WirePair({ seed: 17, faults: { latencyMs: 37 } });
  const seen: { e: TunnelEvent; now: number }[] = [];
  w.a.peer.connect(w.now);
  for (let i = 0; i < 1000; i++) {
    w.advance(1);
    for (const e of w.b.events.splice(0)) seen.push({ e: { ...e, cid: 7 } as TunnelEvent, now: w.now });
  }
  const responded = seen.find((s) => s.e.type === "handshake_completed")!;
  const confirmed = seen.find((s) => s.e.type === "session_confirmed")!;
  expect(confirmed.now - responded.now).toBe(74);
  for (const { e, now } of seen) withSpan(spans.onEvent(e, now), () => log.info(e.type, { cid: e.cid }));
  await telemetry.shutdown();

  expect(rx.requests[0]!.type).toContain("application/json");
  const resource = rx.requests[0]!.body.resourceSpans[0]!.resource.attributes;
  expect(attr(resource, "service.name")).toBe("glassgate");
  expect(attr(resource, "service.instance.id")).toBe(GID);
  expect(attr(resource, "service.version")).toBe((await import("../../package.json")).version);

  const hs = spansOf(rx.requests).filter((s) => s.name === "wireguard.handshake");
  expect(hs).toHaveLength(1);
  const span = hs[0]!;
  expect(attr(span.attributes, "cid")).toBe(7);
  expect(attr(span.attributes, "role")).toBe("responder");
  expect(attr(span.attributes, "session")).toBe(sessionField((responded.e as { session: number }).session));
  expect(attr(span.attributes, "remote")).toMatch(/^[\d.]+:\d+$/);
  expect(span.status?.code).toBe(1); // OK: confirmed
  // Times are the event loop's `now` at each event, not when the span objects were made.
  expect(BigInt(span.startTimeUnixNano)).toBe(BigInt(responded.now) * 1_000_000n);
  expect(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano)).toBe(74_000_000n);
  // The lines logged for its events carry its trace.
  const logged = lines.filter((l) => l.msg === "handshake_completed" || l.msg === "session_confirmed");
  expect(logged).toHaveLength(2);
  for (const l of logged) expect(l.trace_id).toBe(span.traceId);
});

test("a responder handshake never confirmed (the client retries: a preshared-key mismatch) ends as an error span", async () => {
  const rx = receiver();
  const telemetry = new Telemetry({ gid: GID, tracesUrl: rx.url });
  cleanup.push(() => telemetry.shutdown());
  const spans = new HandshakeSpans(telemetry.tracer);
  const remote = { address: "192.0.2.9", port: 51820 };
  const t0 = 1_750_000_000_000; // the clock the loop passes: Unix ms
  spans.onEvent({ type: "handshake_completed", cid: 3, session: 0x300, role: "responder", remote }, t0);
  spans.onEvent({ type: "handshake_completed", cid: 3, session: 0x301, role: "responder", remote }, t0 + 5_000);
  spans.close(t0 + 6_000); // the gateway stops: open spans are ended, not lost
  await telemetry.shutdown();
  const hs = spansOf(rx.requests).filter((s) => s.name === "wireguard.handshake");
  expect(hs).toHaveLength(2);
  const first = hs.find((s) => attr(s.attributes, "session") === "3|0")!;
  expect(first.status).toMatchObject({ code: 2, message: "unconfirmed: a new initiation arrived before the last response was confirmed" });
  expect(BigInt(first.endTimeUnixNano)).toBe(BigInt(t0 + 5_000) * 1_000_000n);
  const second = hs.find((s) => attr(s.attributes, "session") === "3|1")!;
  expect(second.status).toMatchObject({ code: 2, message: "unconfirmed: gateway shut down" });
});

test("a response never confirmed and never retried (the client went away) ends as an error once the client would have given up", async () => {
  const rx = receiver();
  const telemetry = new Telemetry({ gid: GID, tracesUrl: rx.url });
  cleanup.push(() => telemetry.shutdown());
  const spans = new HandshakeSpans(telemetry.tracer);
  const t0 = 1_750_000_000_000;
  spans.onEvent({ type: "handshake_completed", cid: 6, session: 0x600, role: "responder", remote: { address: "192.0.2.9", port: 1 } }, t0);
  spans.onEvent({ type: "goodbye_received", cid: 8 }, t0 + 91_000); // any later event sweeps
  await telemetry.shutdown(); // no close(): the sweep, not shutdown, ended it
  const span = spansOf(rx.requests).find((s) => s.name === "wireguard.handshake")!;
  expect(span.status).toMatchObject({ code: 2, message: "unconfirmed: no authenticated packet within 90 s" });
  expect(BigInt(span.endTimeUnixNano)).toBe(BigInt(t0 + 90_000) * 1_000_000n);
});

test("an initiator's handshake span runs from the first initiation through its retries to the response; one that gives up is an error", async () => {
  const rx = receiver();
  const telemetry = new Telemetry({ gid: GID, tracesUrl: rx.url });
  cleanup.push(() => telemetry.shutdown());
  const spans = new HandshakeSpans(telemetry.tracer);
  const to = { address: "192.0.2.9", port: 51820 };
  const t0 = 1_750_000_000_000;
  spans.onEvent({ type: "handshake_initiated", cid: 4, session: 0x400, attempt: 1, to }, t0);
  spans.onEvent({ type: "handshake_initiated", cid: 4, session: 0x401, attempt: 2, to }, t0 + 5_000);
  spans.onEvent({ type: "handshake_completed", cid: 4, session: 0x401, role: "initiator", remote: to, rttMs: 40 }, t0 + 5_040);
  spans.onEvent({ type: "handshake_initiated", cid: 5, session: 0x500, attempt: 1, to }, t0);
  spans.onEvent({ type: "handshake_failed", cid: 5, attempts: 18 }, t0 + 90_000);
  await telemetry.shutdown();
  const hs = spansOf(rx.requests).filter((s) => s.name === "wireguard.handshake");
  const done = hs.find((s) => attr(s.attributes, "cid") === 4)!;
  expect(attr(done.attributes, "role")).toBe("initiator");
  expect(attr(done.attributes, "session")).toBe("4|1");
  expect(attr(done.attributes, "remote")).toBe("192.0.2.9:51820");
  expect(done.status?.code).toBe(1);
  expect(BigInt(done.startTimeUnixNano)).toBe(BigInt(t0) * 1_000_000n);
  expect(BigInt(done.endTimeUnixNano)).toBe(BigInt(t0 + 5_040) * 1_000_000n);
  expect((done as OtlpSpan & { events: { name: string }[] }).events.map((e) => e.name)).toEqual(["retry"]);
  const gaveUp = hs.find((s) => attr(s.attributes, "cid") === 5)!;
  expect(gaveUp.status).toMatchObject({ code: 2, message: "no response after 18 attempts" });
});

test("admin requests are spans named by route pattern and status; store writes and log lines inside share the request's trace", async () => {
  const rx = receiver();
  const telemetry = new Telemetry({ gid: GID, tracesUrl: rx.url });
  cleanup.push(() => telemetry.shutdown());
  const dir = mkdtempSync(join(tmpdir(), "gg-trace-"));
  const store = Store.open(dir);
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }), () => store.close());
  traceStoreWrites(telemetry.tracer, store);
  const lines: LogLine[] = [];
  const log = new Logger(parseLogFilter("info"), memorySink(lines)).target("admin");
  const peer = store.peers.create({ name: "laptop", publicKey: encodeKey(publicKeyOf(generatePrivateKey())), allowedIps: "10.99.0.2/32", persistentKeepalive: 0, enabled: true }, "test");
  const app = createAdminApp({
    gateway: {
      connections: () => { throw new Error("snapshot failed"); },
      metrics: () => "",
      peersChanged: () => undefined,
      nextAddress: () => "10.99.0.3",
      clientConfig: () => undefined,
    },
    store,
    envToken: "t0ken",
    log,
    tracer: telemetry.tracer,
  });
  const auth = { authorization: "Bearer t0ken", origin: "http://localhost" };
  expect((await app.request(`http://localhost/api/peers/${peer.id}`, { method: "DELETE", headers: auth })).status).toBe(204);
  expect((await app.request("http://localhost/api/connections", { headers: auth })).status).toBe(500);
  await telemetry.shutdown();

  const all = spansOf(rx.requests);
  const del = all.find((s) => s.name === "DELETE /api/peers/:id")!;
  expect(del).toBeDefined();
  expect(del.kind).toBe(2); // SERVER
  expect(attr(del.attributes, "http.route")).toBe("/api/peers/:id");
  expect(attr(del.attributes, "http.request.method")).toBe("DELETE");
  expect(attr(del.attributes, "http.response.status_code")).toBe(204);
  // The store's write (and the audit row it writes) are children of the request.
  const write = all.find((s) => s.name === "store peers.delete")!;
  expect(write).toMatchObject({ traceId: del.traceId, parentSpanId: del.spanId });
  expect(all.some((s) => s.name === "store peers.create" && s.traceId !== del.traceId)).toBe(true);

  const failed = all.find((s) => s.name === "GET /api/connections")!;
  expect(attr(failed.attributes, "http.response.status_code")).toBe(500);
  expect(failed.status?.code).toBe(2);
  const line = lines.find((l) => l.msg === "admin request failed")!;
  expect(line).toMatchObject({ trace_id: failed.traceId, span_id: failed.spanId });
});

test("without a traces endpoint there is no tracer, no span and no trace id on log lines", async () => {
  const telemetry = new Telemetry({ gid: GID });
  cleanup.push(() => telemetry.shutdown());
  expect(telemetry.tracer).toBeUndefined();
  const spans = new HandshakeSpans(telemetry.tracer);
  const lines: LogLine[] = [];
  const log = new Logger(parseLogFilter("info"), memorySink(lines)).target("tunnel");
  const span = spans.onEvent({ type: "handshake_completed", cid: 3, session: 0x300, role: "responder", remote: { address: "192.0.2.9", port: 1 } }, 1_000);
  expect(span).toBeUndefined();
  withSpan(span, () => log.info("handshake completed"));
  expect(lines[0]!.trace_id).toBeUndefined();
});

test("OTEL_RESOURCE_ATTRIBUTES adds to the resource; OTEL_SDK_DISABLED stops export and tracing but not /metrics", async () => {
  const saved = { attrs: process.env.OTEL_RESOURCE_ATTRIBUTES, disabled: process.env.OTEL_SDK_DISABLED };
  cleanup.push(() => {
    for (const [k, v] of [["OTEL_RESOURCE_ATTRIBUTES", saved.attrs], ["OTEL_SDK_DISABLED", saved.disabled]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const rx = receiver();
  process.env.OTEL_RESOURCE_ATTRIBUTES = "deployment.environment.name=staging";
  const on = new Telemetry({ gid: GID, tracesUrl: rx.url });
  on.tracer!.startSpan("probe").end();
  await on.shutdown();
  const resource = rx.requests[0]!.body.resourceSpans[0]!.resource.attributes;
  expect(attr(resource, "deployment.environment.name")).toBe("staging");
  expect(attr(resource, "service.instance.id")).toBe(GID);

  process.env.OTEL_SDK_DISABLED = "true";
  const off = new Telemetry({ gid: GID, tracesUrl: rx.url });
  cleanup.push(() => off.shutdown());
  expect(off.tracer).toBeUndefined();
  off.meter.createObservableGauge("glassgate.probe").addCallback((r) => r.observe(1));
  expect(await off.prometheusText()).toContain("glassgate_probe 1");
});
