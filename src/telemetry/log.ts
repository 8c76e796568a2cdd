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

/** Renders an error with its whole `cause` chain, so logs never show only the top message. */
export function errorChain(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 16; depth++) {
    parts.push(cur instanceof Error ? cur.message : String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(": ");
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
    const line: LogLine = { ts: new Date().toISOString(), level, target, msg };
    if (fields) {
      for (const k in fields) {
        const v = fields[k];
        if (v === undefined) continue;
        line[k] = k === "err" ? errorChain(v) : v;
      }
    }
    // Tracing off: no span is ever active (or only the invalid no-op one), nothing is added.
    // A span just ended still names the trace its line belongs to (a handshake's last line).
    const sc = trace.getSpanContext(context.active());
    if (sc && isSpanContextValid(sc)) {
      line.trace_id = sc.traceId;
      line.span_id = sc.spanId;
    }
    this.#sink(line);
  }

  /** A logger bound to one target, the shape modules hold. */
  target(target: string): TargetLogger {
    return new TargetLogger(this, target);
  }
}

export class TargetLogger {
  constructor(readonly root: Logger, readonly name: string) {}
  enabled(level: Exclude<Level, "off">): boolean {
    return this.root.enabled(level, this.name);
  }
  trace(msg: string, fields?: LogFields) { this.root.log("trace", this.name, msg, fields); }
  debug(msg: string, fields?: LogFields) { this.root.log("debug", this.name, msg, fields); }
  info(msg: string, fields?: LogFields) { this.root.log("info", this.name, msg, fields); }
  warn(msg: string, fields?: LogFields) { this.root.log("warn", this.name, msg, fields); }
  error(msg: string, fields?: LogFields) { this.root.log("error", this.name, msg, fields); }
}

export function stderrSink(line: LogLine): void {
  process.stderr.write(JSON.stringify(line) + "\n");
}

/** Collects lines in memory: for tests, and the seed of the admin UI's ring buffer. */
export function memorySink(into: LogLine[]): LogSink {
  return (line) => void into.push(line);
}
