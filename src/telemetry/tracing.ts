// Spans, built in the composition and telemetry layers from what the cores already report: the
// sans-IO cores never see a tracer. Every helper takes `Tracer | undefined` and does nothing but
// call through when it is undefined (no traces endpoint), so tracing off costs one branch.
import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from "@opentelemetry/api";
import type { Store } from "../store/index.ts";
import type { TunnelEvent } from "../tunnel/index.ts";
import { formatEndpoint, REKEY_ATTEMPT_TIME, sessionField } from "../wire/index.ts";

/**
 * Runs `f` inside a span (the active one while it runs, so logs inside carry its trace_id),
 * ending it when `f` returns or its promise settles; a throw or rejection marks it as an error.
 */
export function inSpan<T>(tracer: Tracer | undefined, name: string, attributes: Attributes, f: (span: Span | undefined) => T, kind: SpanKind = SpanKind.INTERNAL): T {
  if (!tracer) return f(undefined);
  return tracer.startActiveSpan(name, { kind, attributes }, (span) => {
    const fail = (err: unknown) => {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      span.end();
    };
    try {
      const out = f(span);
      if (out instanceof Promise) {
        return out.then(
          (v) => (span.end(), v),
          (err) => {
            fail(err);
            throw err;
          },
        ) as T;
      }
      span.end();
      return out;
    } catch (err) {
      fail(err);
      throw err;
    }
  });
}

/** Runs `f` with `span` active (logs inside carry its ids); without a span, just runs it. */
export function withSpan<T>(span: Span | undefined, f: () => T): T {
  return span ? context.with(trace.setSpan(context.active(), span), f) : f();
}

/**
 * Wraps the named methods of one repository so each call is a span `store <scope>.<method>`:
 * writes only (peers, resources, audit), one span per call, never per query.
 */
export function traceWrites<T extends object>(tracer: Tracer | undefined, repo: T, scope: string, methods: readonly (keyof T & string)[]): void {
  if (!tracer) return;
  for (const m of methods) {
    const f = repo[m];
    if (typeof f !== "function") continue;
    const attributes = { "db.system.name": "sqlite", "db.collection.name": scope, "db.operation.name": m };
    Object.defineProperty(repo, m, {
      configurable: true,
      value: (...args: unknown[]) => inSpan(tracer, `store ${scope}.${m}`, attributes, () => (f as (...a: unknown[]) => unknown).apply(repo, args)),
    });
  }
}

/** The store's writes that get a span: peers, resources and authorizations, audit rows. */
export function traceStoreWrites(tracer: Tracer | undefined, store: Pick<Store, "peers" | "resources" | "audit">): void {
  traceWrites(tracer, store.peers, "peers", ["create", "update", "delete"]);
  traceWrites(tracer, store.resources, "resources", ["create", "update", "upsert", "delete", "authorize", "revoke"]);
  traceWrites(tracer, store.audit, "audit", ["record", "prune"]);
}

/** Open handshake spans beyond this are ended as abandoned (peers removed mid-handshake, floods). */
export const MAX_OPEN_HANDSHAKES = 4096;
/**
 * How long a span may stay open: a responder's client gives up after REKEY_ATTEMPT_TIME; an
 * initiator's own give-up (handshake_failed) comes at about that time plus jitter, so twice that
 * only catches a peer removed mid-handshake.
 */
export const ABANDON_AFTER = { responder: REKEY_ATTEMPT_TIME, initiator: 2 * REKEY_ATTEMPT_TIME } as const;

/**
 * One span per WireGuard handshake, from the tunnel's events and the event loop's `now`:
 * - initiator: `handshake_initiated` (first attempt) → `handshake_completed` (response consumed),
 *   retries are span events; `handshake_failed` ends it as an error;
 * - responder: `handshake_completed` (initiation consumed, response sent) → `session_confirmed`
 *   (first authenticated transport packet: key confirmation). A new initiation before that ends
 *   the old span unconfirmed, as an error: a client whose transport packets never authenticate
 *   (a preshared-key mismatch) shows as a row of them.
 */
export class HandshakeSpans {
  /** Keyed by `${role}:${cid}`: at most one open handshake per connection and role. */
  readonly #open = new Map<string, { span: Span; session: string; startedAt: number; role: "initiator" | "responder" }>();
  #sweptAt = -Infinity;

  constructor(private readonly tracer: Tracer | undefined) {}

  /** Feeds one tunnel event; returns the span it concerns (to run its log line in), if any. */
  onEvent(e: TunnelEvent, now: number): Span | undefined {
    const tracer = this.tracer;
    if (!tracer) return undefined;
    if (now - this.#sweptAt >= 1_000) this.#sweep(now);
    switch (e.type) {
      case "handshake_initiated": {
        const key = `initiator:${e.cid}`;
        const open = this.#open.get(key);
        const attrs = { session: sessionField(e.session), remote: formatEndpoint(e.to), attempt: e.attempt };
        if (open) {
          open.span.addEvent("retry", attrs, now);
          open.span.setAttributes(attrs);
          open.session = attrs.session;
          return open.span;
        }
        return this.#start(key, tracer, now, { cid: e.cid, role: "initiator" as const, ...attrs });
      }
      case "handshake_completed": {
        const attrs = { session: sessionField(e.session), remote: formatEndpoint(e.remote) };
        if (e.role === "initiator") {
          const span = this.#take(`initiator:${e.cid}`) ?? tracer.startSpan("wireguard.handshake", { kind: SpanKind.INTERNAL, root: true, startTime: now - (e.rttMs ?? 0), attributes: { cid: e.cid, role: "initiator" } });
          span.setAttributes({ ...attrs, ...(e.rttMs !== undefined ? { rtt_ms: e.rttMs } : {}) });
          span.setStatus({ code: SpanStatusCode.OK });
          span.end(now);
          return span;
        }
        const key = `responder:${e.cid}`;
        this.#endUnconfirmed(key, now, "a new initiation arrived before the last response was confirmed");
        return this.#start(key, tracer, now, { cid: e.cid, role: "responder" as const, ...attrs });
      }
      case "session_confirmed": {
        const key = `responder:${e.cid}`;
        const open = this.#open.get(key);
        // Only the session the span answered for confirms it.
        if (!open || open.session !== sessionField(e.session)) return undefined;
        this.#open.delete(key);
        const span = open.span;
        span.setAttributes({ rtt_ms: e.rttMs });
        span.setStatus({ code: SpanStatusCode.OK });
        span.end(now);
        return span;
      }
      case "handshake_failed": {
        const span = this.#take(`initiator:${e.cid}`);
        if (!span) return undefined;
        span.setAttributes({ attempts: e.attempts });
        span.setStatus({ code: SpanStatusCode.ERROR, message: `no response after ${e.attempts} attempts` });
        span.end(now);
        return span;
      }
      default:
        return undefined;
    }
  }

  /** Ends every open span (shutdown), so none is lost unexported. */
  close(now: number): void {
    for (const key of [...this.#open.keys()]) this.#endUnconfirmed(key, now, "gateway shut down");
  }

  /** Ends spans open past ABANDON_AFTER, at the moment they became hopeless (once a second at most). */
  #sweep(now: number): void {
    this.#sweptAt = now;
    for (const [key, o] of this.#open) {
      const limit = ABANDON_AFTER[o.role];
      if (now - o.startedAt < limit) continue;
      this.#open.delete(key);
      o.span.setStatus({ code: SpanStatusCode.ERROR, message: o.role === "responder" ? `unconfirmed: no authenticated packet within ${limit / 1000} s` : `abandoned: no response or give-up within ${limit / 1000} s` });
      o.span.end(o.startedAt + limit);
    }
  }

  #start(key: string, tracer: Tracer, now: number, attributes: Attributes & { session: string; role: "initiator" | "responder" }): Span {
    if (this.#open.size >= MAX_OPEN_HANDSHAKES) this.#endUnconfirmed(this.#open.keys().next().value!, now, "abandoned: too many open handshakes");
    // A root span: a handshake belongs to no admin request or lookup that happens to be active.
    const span = tracer.startSpan("wireguard.handshake", { kind: SpanKind.INTERNAL, root: true, startTime: now, attributes });
    this.#open.set(key, { span, session: attributes.session, startedAt: now, role: attributes.role });
    return span;
  }

  #take(key: string): Span | undefined {
    const open = this.#open.get(key);
    this.#open.delete(key);
    return open?.span;
  }

  #endUnconfirmed(key: string, now: number, why: string): void {
    const span = this.#take(key);
    if (!span) return;
    span.setStatus({ code: SpanStatusCode.ERROR, message: `unconfirmed: ${why}` });
    span.end(now);
  }
}
