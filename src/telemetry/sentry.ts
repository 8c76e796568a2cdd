// Error reporting to Sentry (@sentry/bun) when SENTRY_DSN is set. Every error-level log line
// becomes an event tagged with cid/gid/rid, carrying a `connection` context (session index,
// endpoint, last handshake, state, a link to /connections/:cid), and — when a peer key is known —
// fingerprinted by the key as an unsigned 256-bit decimal, so events group per peer. The event
// id is written back onto the log line, so the admin's Errors page can show it.
//
// Rate-limited: an error that repeats (per packet, per sync, per attacker request) must not
// become a flood of events — it would burn the project's quota and bury everything else. Per
// (target, msg, peer key or cid) at most REPORT_BURST events per REPORT_WINDOW_MS, at most
// REPORT_GLOBAL_BURST over all of them; the rest are counted (`suppressed`), and the next event
// of that kind carries how many were held back (`suppressed_since_last`). The log line itself is
// always kept.
import * as Sentry from "@sentry/bun";
import { decodeKey, keyToU256Decimal } from "../crypto/x25519.ts";
import { lineErrors, type LogLine, type LogSink } from "./log.ts";
import type { Problem } from "./problems.ts";
import { Throttle } from "./throttle.ts";
import type { ConnectionView } from "./view.ts";

export interface SentryOptions {
  dsn: string;
  release?: string;
  environment?: string;
  /** The admin server's URL, for links from events back to the connection (its bind address). */
  adminUrl?: string;
  /**
   * GLASSGATE_PUBLIC_ADMIN_URL: the admin as people reach it (behind a proxy, a DNS name). Links
   * use it over `adminUrl`, whose bind address (127.0.0.1) is useless from a Sentry page.
   */
  publicAdminUrl?: string;
  /** Looks a connection up by cid for the `connection` context. */
  connection?: (cid: number) => ConnectionView | undefined;
  /** Monotonic milliseconds for the rate limit (tests pass a fake clock). */
  clock?: () => number;
}

export const REPORT_WINDOW_MS = 60_000;
export const REPORT_BURST = 5;
export const REPORT_GLOBAL_BURST = 100;
/** A named problem that clears and comes back (a flapping endpoint) is reported again only after this. */
export const PROBLEM_REPEAT_MS = 3600_000;

export class SentryReporter {
  readonly #perKind = new Throttle({ windowMs: REPORT_WINDOW_MS, burst: REPORT_BURST });
  readonly #overall = new Throttle({ windowMs: REPORT_WINDOW_MS, burst: REPORT_GLOBAL_BURST });
  readonly #problemRepeats = new Throttle({ windowMs: PROBLEM_REPEAT_MS, burst: 1, maxKeys: 10_000 });
  readonly #clock: () => number;
  /** Error lines not sent because of the rate limit. */
  suppressed = 0;

  constructor(private readonly opts: SentryOptions) {
    this.#clock = opts.clock ?? (() => performance.now());
    this.connection = opts.connection;
    Sentry.init({
      dsn: opts.dsn,
      release: opts.release ?? "glassgate@0.1.0",
      environment: opts.environment ?? "production",
      // We report explicitly from logs; no automatic global handlers reporting twice.
      defaultIntegrations: false,
    });
  }

  /** Set once the data plane exists (the logger, and so the reporter, are made before it). */
  connection: ((cid: number) => ConnectionView | undefined) | undefined;
  adminUrl: string | undefined;
  /** The gateway id, tagged on problem events (known once the store is open). */
  gid: string | undefined;

  /** Where a link to `/connections/:cid` points: the public admin URL when set. */
  connectionLink(cid: number): string | undefined {
    const base = (this.opts.publicAdminUrl ?? this.adminUrl ?? this.opts.adminUrl)?.replace(/\/+$/, "");
    return base ? `${base}/connections/${cid}` : undefined;
  }

  /**
   * One event for a named problem (problems.ts) as it appears: grouped per problem kind and peer
   * (fingerprint [kind, public key as u256 decimal], or the source address when no key is known),
   * with the stack of the Error made where it was detected. The detector raises a problem once
   * until it clears; one that comes back within PROBLEM_REPEAT_MS is not sent again (undefined).
   */
  reportProblem(p: Problem): string | undefined {
    const conn = p.cid !== undefined ? this.connection?.(p.cid) : undefined;
    let u256: string | undefined;
    if (p.public_key) {
      try {
        u256 = keyToU256Decimal(decodeKey(p.public_key));
      } catch {
        u256 = undefined;
      }
    }
    const fingerprint = [p.kind, u256 ?? p.source ?? "gateway"];
    if (this.#problemRepeats.admit(fingerprint.join("|"), this.#clock()) === undefined) return undefined;
    return Sentry.withScope((scope) => {
      scope.setLevel("warning");
      scope.setTag("target", "problems");
      scope.setTag("problem", p.kind);
      if (p.cid !== undefined) scope.setTag("cid", String(p.cid));
      if (this.gid) scope.setTag("gid", this.gid);
      if (u256) scope.setTag("public_key", u256);
      scope.setFingerprint(fingerprint);
      scope.setContext("problem", {
        kind: p.kind,
        title: p.title,
        likely_cause: p.likely_cause,
        fix: p.fix,
        source: p.source,
        count: p.count,
        since: new Date(p.since).toISOString(),
      });
      if (p.cid !== undefined) {
        scope.setContext("connection", {
          cid: p.cid,
          session: conn?.sessions[0],
          endpoint: conn?.endpoint,
          last_handshake: conn?.last_handshake,
          state: conn?.state,
          admin: this.connectionLink(p.cid),
        });
      }
      return Sentry.captureException(p.error);
    });
  }

  /** Reports one log line; returns the Sentry event id, or undefined when rate-limited. */
  report(line: LogLine): string | undefined {
    const cid = typeof line.cid === "number" ? line.cid : undefined;
    // Decided before the connection lookup, which walks every connection: a suppressed line costs nothing.
    const now = this.#clock();
    const who = typeof line.public_key === "string" ? line.public_key : cid !== undefined ? `cid:${cid}` : "";
    const heldBack = this.#perKind.admit(`${line.target}|${line.msg}|${who}`, now);
    if (heldBack === undefined || this.#overall.admit("all", now) === undefined) {
      this.suppressed++;
      return undefined;
    }
    const conn = cid !== undefined ? this.connection?.(cid) : undefined;
    const publicKey = typeof line.public_key === "string" ? line.public_key : conn?.public_key;
    return Sentry.withScope((scope) => {
      scope.setLevel("error");
      scope.setTag("target", line.target);
      if (cid !== undefined) scope.setTag("cid", String(cid));
      if (typeof line.gid === "string") scope.setTag("gid", line.gid);
      if (typeof line.rid === "string") scope.setTag("rid", line.rid);
      // Portal mode: the portal's id of the client (cid is the gateway's number for its connection).
      if (typeof line.client_id === "string") scope.setTag("client_id", line.client_id);
      if (conn || cid !== undefined) {
        scope.setContext("connection", {
          cid,
          session: line.session ?? conn?.sessions[0],
          endpoint: conn?.endpoint ?? line.remote,
          last_handshake: conn?.last_handshake,
          state: conn?.state,
          admin: cid !== undefined ? this.connectionLink(cid) : undefined,
        });
      }
      if (publicKey) {
        let u256: string | undefined;
        try {
          u256 = keyToU256Decimal(decodeKey(publicKey));
        } catch {
          u256 = undefined;
        }
        if (u256) {
          scope.setTag("public_key", u256);
          scope.setFingerprint(["{{ default }}", u256]);
        }
      }
      const { ts: _ts, level: _l, target: _t, msg, err, ...extra } = line;
      scope.setExtras(heldBack > 0 ? { ...extra, suppressed_since_last: heldBack } : extra);
      const error = new Error(typeof err === "string" ? `${msg}: ${err}` : msg);
      error.name = line.target;
      // The stack of the error as thrown (where it arose), not of this reporter.
      const thrown = lineErrors.get(line)?.stack;
      if (thrown) error.stack = `${error.name}: ${error.message}\n${thrown.split("\n").filter((l) => /^\s+at /.test(l)).join("\n")}`;
      return Sentry.captureException(error);
    });
  }

  async flush(timeoutMs = 2000): Promise<boolean> {
    return Sentry.flush(timeoutMs);
  }

  async close(timeoutMs = 2000): Promise<void> {
    await Sentry.close(timeoutMs);
  }
}

/** A sink that reports error lines (attaching `sentry_event_id`) before passing every line on. */
export function reportingSink(reporter: SentryReporter | undefined, next: LogSink): LogSink {
  if (!reporter) return next;
  return (line) => {
    if (line.level === "error") {
      try {
        const id = reporter.report(line);
        if (id !== undefined) line.sentry_event_id = id;
      } catch {
        // Reporting must never take logging down with it.
      }
    }
    next(line);
  };
}
