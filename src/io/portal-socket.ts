// The portal connection's IO shell: one Bun WebSocket at a time, driven by the sans-IO channel
// (src/portal/channel.ts). The core decides everything — when to open, when to give up on a socket
// (its 5 s connect timeout included), what to write, when to wake — and this only does it: open
// when told, feed frames and the socket's fate back in, write what is polled, sleep until
// pollTimeout(). A socket the core told us to close is detached first, so nothing stale comes back.
import type { ChannelEvent, PhoenixChannel, SocketEnd } from "../portal/index.ts";
import { redactedUrl } from "../portal/index.ts";
import type { TargetLogger } from "../telemetry/log.ts";

export interface PortalSocketOptions<In extends { event: string }, Out extends { event: string; payload: unknown }> {
  channel: PhoenixChannel<In, Out>;
  /** Built at each connect (the URL carries the current public key). A secret: it holds the token. */
  url: () => string;
  /** Sent as the User-Agent header (Bun's WebSocket takes `headers`, unlike the browser's). */
  userAgent: string;
  /** Everything the core reports except its socket orders: joined, message, malformed, fatal … */
  onEvent: (event: ChannelEvent<In>) => void;
  log?: TargetLogger;
  /** Monotonic milliseconds. */
  clock?: () => number;
}

/** Bun reports a refused upgrade only as an error text: "… Expected 101 status code: 401". */
const HTTP_STATUS = /Expected 101 status code: (\d{3})/;

export class PortalSocket<In extends { event: string }, Out extends { event: string; payload: unknown }> {
  private ws: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt: number | null = null;
  private readonly clock: () => number;

  constructor(private readonly o: PortalSocketOptions<In, Out>) {
    this.clock = o.clock ?? (() => performance.now());
  }

  start(): void {
    this.o.channel.connect(this.clock());
    this.pump();
  }

  send(message: Out): void {
    this.o.channel.send(message, this.clock());
    this.pump();
  }

  /** A fresh socket and join now (e.g. for a new `init`); the backoff starts over. */
  reconnect(): void {
    this.o.channel.connect(this.clock());
    this.pump();
  }

  stop(): void {
    this.o.channel.close();
    this.pump();
    this.clearTimer();
  }

  private pump(): void {
    const ch = this.o.channel;
    for (let ev = ch.pollEvent(); ev; ev = ch.pollEvent()) {
      if (ev.kind === "open") this.open();
      else if (ev.kind === "close") this.drop(ev.reason);
      else {
        if (this.o.log) logEvent(this.o.log, ev);
        this.o.onEvent(ev);
      }
    }
    for (let frame = ch.pollSend(); frame !== undefined; frame = ch.pollSend()) {
      if (this.o.log?.enabled("trace")) this.o.log.trace("sent", { frame });
      this.ws?.send(frame);
    }
    this.arm(ch.pollTimeout());
  }

  private arm(at: number | undefined): void {
    if (at === this.timerAt) return;
    this.clearTimer();
    if (at === undefined) return;
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = this.timerAt = null;
      this.o.channel.handleTimeout(this.clock());
      this.pump();
    }, Math.max(0, at - this.clock()));
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = this.timerAt = null;
  }

  private open(): void {
    this.drop("replaced");
    const url = this.o.url();
    this.o.log?.debug("connecting to portal", { url: redactedUrl(url), user_agent: this.o.userAgent });
    const ws = new WebSocket(url, { headers: { "User-Agent": this.o.userAgent } } as unknown as string[]);
    this.ws = ws;
    let opened = false;
    let error = "";
    const current = () => this.ws === ws;
    ws.onopen = () => {
      if (!current()) return;
      opened = true;
      this.o.channel.handleConnected(this.clock());
      this.pump();
    };
    ws.onmessage = (e) => {
      if (!current()) return;
      const text = typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data as ArrayBuffer);
      if (this.o.log?.enabled("trace")) this.o.log.trace("received", { frame: text });
      this.o.channel.handleMessage(text, this.clock());
      this.pump();
    };
    ws.onerror = (e) => {
      // Bun's text quotes the whole URL, token included: it must not reach a log line or an exit message.
      error = scrubToken(((e as ErrorEvent).message ?? "WebSocket error").replaceAll(url, redactedUrl(url)));
    };
    ws.onclose = (e) => {
      if (!current()) return;
      this.ws = null;
      const status = HTTP_STATUS.exec(error);
      const end: SocketEnd = opened
        ? { kind: "closed", code: e.code, reason: e.reason }
        : status
          ? { kind: "http", status: Number(status[1]) }
          : { kind: "error", message: error || `closed before opening (${e.code})` };
      this.o.log?.info("portal socket ended", { ...end, end: end.kind, kind: undefined });
      this.o.channel.handleDisconnected(end, this.clock());
      this.pump();
    };
  }

  /** Closes and forgets the current socket: its late events are ignored (`current()` is false). */
  private drop(reason: string): void {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    this.o.log?.debug("closing portal socket", { reason });
    try {
      ws.close(1000, reason.slice(0, 120));
    } catch {
      // closing a socket that never opened may throw in some runtimes; it is gone either way
    }
  }
}

/** Any `token=` query value in a text, replaced. */
export function scrubToken(text: string): string {
  return text.replace(/([?&]token=)[^&'"\s]*/g, "$1REDACTED");
}

/** One log line per lifecycle event, fields not prose; messages themselves are the application's
 * to log (it knows their cid/rid). */
export function logEvent(log: TargetLogger, ev: ChannelEvent<{ event: string }>): void {
  switch (ev.kind) {
    case "joined":
      return log.info("joined portal channel", { topic: ev.topic, join_ms: ev.latencyMs });
    case "reconnect_scheduled":
      return (ev.attempt > 3 ? log.warn : log.info).call(log, "reconnecting to portal", { after_ms: ev.afterMs, attempt: ev.attempt, reason: ev.reason });
    case "malformed":
      return log.warn("malformed portal message", { topic: ev.topic, event: ev.event, ref: ev.ref, issue: ev.issue, count: ev.count });
    case "error_reply":
      return log.warn("portal answered with an error", { topic: ev.topic, ref: ev.ref, reason: ev.reason });
    case "dropped":
      return log.warn("portal message dropped", { event: ev.event, reason: ev.reason });
    case "fatal":
      return log.error("portal connection failed for good", { reason: ev.reason, exit_code: ev.exitCode, err: ev.message });
    case "message":
      if (log.enabled("debug")) log.debug("portal message", { event: ev.message.event });
      return;
  }
}
