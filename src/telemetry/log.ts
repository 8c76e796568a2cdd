// Structured logs: one JSON object per line with ts, level, target, msg and the harmonised ids
// (cid, gid, rid, session, remote, err). Levels are set per target from GLASSGATE_LOG, e.g.
// "info,tunnel=debug,wire=trace". Hot paths call `enabled()` first so a disabled line costs nothing.
// A line written while a recording span is active (tracing.ts) carries its `trace_id` and `span_id`,
// read only for lines that pass the level check.
import { context, isSpanContextValid, trace } from "@opentelemetry/api";

export const LEVELS = ["trace", "debug", "info", "warn", "error", "off"] as const;
export type Level = (typeof LEVELS)[number];
const RANK: Record<Level, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, off: 5 };

export type LogFields = Record<string, unknown>;
export interface LogLine extends LogFields {
  ts: string;
  level: Exclude<Level, "off">;
  target: string;
  msg: string;
}
export type LogSink = (line: LogLine) => void;

export interface LogFilter {
  defaultLevel: Level;
  targets: Map<string, Level>;
}

/** Parses "info,tunnel=debug". Unknown level names are an error naming the directive. */
export function parseLogFilter(spec: string | undefined): LogFilter {
  const filter: LogFilter = { defaultLevel: "info", targets: new Map() };
  for (const raw of (spec ?? "").split(",")) {
    const directive = raw.trim();
    if (!directive) continue;
    const eq = directive.indexOf("=");
    const [target, level] = eq < 0 ? [undefined, directive] : [directive.slice(0, eq), directive.slice(eq + 1)];
    if (!(LEVELS as readonly string[]).includes(level)) {
      throw new Error(`GLASSGATE_LOG: "${directive}" has unknown level "${level}" (one of ${LEVELS.join(", ")})`);
    }
    if (target === undefined) filter.defaultLevel = level as Level;
    else filter.targets.set(target, level as Level);
  }
  return filter;
}

/**
 * The Error a line's `err` was rendered from, kept beside the line (not in it: lines are plain
 * JSON) so an error reporter can show the stack of where it was thrown, not of the reporter.
 */
export const lineErrors = new WeakMap<LogLine, Error>();

/** Renders an error with its whole `cause` chain, so logs never show only the top message. */
export function errorChain(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 16; depth++) {
    try {
      parts.push(cur instanceof Error ? String(cur.message) : String(cur));
    } catch {
      parts.push(`[${typeof cur} without a printable form]`); // e.g. Object.create(null)
    }
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ");
}

/**
 * Bounds on one line. Field values can carry input from anyone who can reach the gateway (a DNS
 * name, a login form's username, an upstream's error text): capped, one line stays small and the
 * 10 000-line ring stays bounded (~10 000 × MAX_LINE_CHARS). Names and keys fit easily.
 */
export const MAX_FIELD_CHARS = 1024;
export const MAX_ERR_CHARS = 4096;
export const MAX_LINE_CHARS = 16 * 1024;
export const MAX_FIELDS = 48;

/**
 * A duration for a log field, in milliseconds rounded to 0.1 ms: clock differences are floats
 * like 48.98876953125, whose digits past a tenth are noise that makes lines hard to read.
 * Every duration a log line carries goes through this (fields named `*_ms`).
 */
export function logMs(ms: number): number;
export function logMs(ms: number | undefined): number | undefined;
export function logMs(ms: number | undefined): number | undefined {
  return ms === undefined || !Number.isFinite(ms) ? ms : Math.round(ms * 10) / 10;
}

/** `s` cut to `max` characters, saying how much was cut (the cut is visible, not silent). */
export function capText(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…(+${s.length - max} chars)`;
}

const bigintsAsText = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

/**
 * A field value every sink can serialise: JSON.stringify throws on a BigInt or a cycle, and a
 * log call must never throw into its caller (often the packet path). Strings are capped; an
 * object is copied through JSON (so it cannot change or grow after the call) and, when too
 * long, kept as its capped JSON text.
 */
function safeValue(v: unknown, max: number): unknown {
  switch (typeof v) {
    case "string":
      return capText(v, max);
    case "number":
    case "boolean":
      return v;
    case "bigint":
      return v.toString();
    case "symbol":
    case "function":
      return capText(String(v), max);
    default:
      if (v === null) return null;
      if (v instanceof Error) return capText(errorChain(v), max);
      try {
        const json = JSON.stringify(v, bigintsAsText);
        if (json === undefined) return undefined;
        return json.length <= max ? JSON.parse(json) : capText(json, max);
      } catch (err) {
        return `[not serialisable: ${capText(errorChain(err), 200)}]`;
      }
  }
}

export class Logger {
  #filter: LogFilter;
  #sink: LogSink;
  #cache = new Map<string, number>();

  constructor(filter: LogFilter = parseLogFilter(process.env.GLASSGATE_LOG), sink: LogSink = stderrSink) {
    this.#filter = filter;
    this.#sink = sink;
  }

  /** The most specific directive wins: "wire::handshake" matches "wire::handshake", then "wire". */
  #threshold(target: string): number {
    let rank = this.#cache.get(target);
    if (rank !== undefined) return rank;
    let level = this.#filter.defaultLevel;
    let best = -1;
    for (const [prefix, l] of this.#filter.targets) {
      if ((target === prefix || target.startsWith(prefix + "::")) && prefix.length > best) {
        best = prefix.length;
        level = l;
      }
    }
    rank = RANK[level];
    this.#cache.set(target, rank);
    return rank;
  }

  enabled(level: Exclude<Level, "off">, target: string): boolean {
    return RANK[level] >= this.#threshold(target);
  }

  log(level: Exclude<Level, "off">, target: string, msg: string, fields?: LogFields): void {
    if (!this.enabled(level, target)) return;
    const line: LogLine = { ts: new Date().toISOString(), level, target, msg: capText(msg, MAX_FIELD_CHARS) };
    if (fields) {
      // What is left of the line's budget; fields past it (or past MAX_FIELDS) are counted, not kept.
      let budget = MAX_LINE_CHARS;
      let kept = 0;
      let dropped = 0;
      for (const k in fields) {
        let v: unknown;
        try {
          v = fields[k];
        } catch {
          continue; // a throwing getter: nothing to show
        }
        if (v === undefined) continue;
        if (kept >= MAX_FIELDS || budget <= 0 || k.length > 64) {
          dropped++;
          continue;
        }
        const value = k === "err" ? capText(errorChain(v), Math.min(MAX_ERR_CHARS, budget)) : safeValue(v, Math.min(MAX_FIELD_CHARS, budget));
        if (k === "err" && v instanceof Error) lineErrors.set(line, v);
        if (value === undefined) continue;
        budget -= typeof value === "string" ? value.length : typeof value === "object" && value !== null ? JSON.stringify(value).length : 16;
        line[k] = value;
        kept++;
      }
      if (dropped > 0) line.fields_dropped = dropped;
    }
    // Tracing off: no span is ever active (or only the invalid no-op one), nothing is added.
    // A span just ended still names the trace its line belongs to (a handshake's last line).
    const sc = trace.getSpanContext(context.active());
    if (sc && isSpanContextValid(sc)) {
      line.trace_id = sc.traceId;
      line.span_id = sc.spanId;
    }
    try {
      this.#sink(line);
    } catch {
      // A sink that fails (a subscriber gone away) must not take the caller with it.
    }
  }

  /** A logger bound to one target, the shape modules hold. */
  target(target: string): TargetLogger {
    return new TargetLogger(this, target);
  }
}

export class TargetLogger {
  constructor(readonly root: Logger, readonly name: string, readonly bound?: LogFields) {}
  /** The same target with `fields` on every line (portal mode's `gid` on each portal line); a line's own fields win. */
  with(fields: LogFields): TargetLogger {
    return new TargetLogger(this.root, this.name, { ...this.bound, ...fields });
  }
  enabled(level: Exclude<Level, "off">): boolean {
    return this.root.enabled(level, this.name);
  }
  #f(fields: LogFields | undefined): LogFields | undefined {
    return this.bound ? { ...this.bound, ...fields } : fields;
  }
  trace(msg: string, fields?: LogFields) { this.root.log("trace", this.name, msg, this.#f(fields)); }
  debug(msg: string, fields?: LogFields) { this.root.log("debug", this.name, msg, this.#f(fields)); }
  info(msg: string, fields?: LogFields) { this.root.log("info", this.name, msg, this.#f(fields)); }
  warn(msg: string, fields?: LogFields) { this.root.log("warn", this.name, msg, this.#f(fields)); }
  error(msg: string, fields?: LogFields) { this.root.log("error", this.name, msg, this.#f(fields)); }
}

export function stderrSink(line: LogLine): void {
  process.stderr.write(JSON.stringify(line) + "\n");
}

/** Collects lines in memory: for tests, and the seed of the admin UI's ring buffer. */
export function memorySink(into: LogLine[]): LogSink {
  return (line) => void into.push(line);
}
