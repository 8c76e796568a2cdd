// One Phoenix channel over one WebSocket at a time, as Firezone's `phoenix-channel` crate runs it,
// without the socket: the IO shell (src/io/portal-socket.ts) opens and closes sockets when told,
// feeds frames and socket fates in, writes the frames polled out and sleeps until pollTimeout().
// Every rule is here, so every timer and rule is tested on a fake clock.
//
// Life of a connection: open → (socket up) phx_join, ref 0 → join reply ok → joined: buffered
// messages flow. Heartbeats every 30 s of silence. A lost socket, a join unanswered for 5 s, a
// `phx_close` or an unanswered heartbeat → close and reconnect: at once the first time, then with
// Firezone's backoff, giving up after 15 minutes without a join. Fatal (exit): 4xx on the upgrade,
// `disconnect {reason: token_expired}`, an error reply to the join.
import { ReconnectBackoff } from "./backoff.ts";
import {
  CONNECT_TIMEOUT_MS,
  EXIT_BAD_CONFIG,
  EXIT_RUNTIME,
  HEARTBEAT_INTERVAL_MS,
  JOIN_TIMEOUT_MS,
  MAX_BUFFERED_MESSAGES,
  PHOENIX_TOPIC,
} from "./constants.ts";
import { decodeFrame, describeIssue, encodeFrame, refNumber, ReplySchema, type InboundRef } from "./frame.ts";
import type { Codec } from "./messages.ts";

/** How a socket ended, as the shell saw it. */
export type SocketEnd =
  /** The upgrade got an HTTP answer other than 101 (`status` 401, 404, 502 …). */
  | { kind: "http"; status: number; body?: string }
  /** The socket closed after it was open (the portal went away, the network broke). */
  | { kind: "closed"; code?: number; reason?: string }
  /** It never opened: refused, unreachable, TLS, DNS. */
  | { kind: "error"; message: string };

export type FatalReason = "unauthorized" | "token_expired" | "join_rejected" | "retries_exhausted";

export type ChannelEvent<In> =
  /** Shell: open a socket to the portal now (closing any previous one first). */
  | { kind: "open" }
  /** Shell: close the current socket and drop it: the core expects nothing more from it. */
  | { kind: "close"; reason: string }
  | { kind: "joined"; topic: string; latencyMs: number }
  | { kind: "reconnect_scheduled"; afterMs: number; attempt: number; reason: string }
  /** The process should exit with `exitCode`, printing `message`. Nothing follows. */
  | { kind: "fatal"; reason: FatalReason; exitCode: number; message: string }
  | { kind: "message"; message: In }
  /** A frame that did not validate: logged and counted, never fatal. */
  | { kind: "malformed"; topic: string | null; event: string | null; ref: InboundRef; issue: string; count: number }
  /** The portal answered one of our messages with an error (other than the join's). */
  | { kind: "error_reply"; topic: string; ref: number | null; reason: string }
  /** A message given up because more than MAX_BUFFERED_MESSAGES waited for a join. */
  | { kind: "dropped"; event: string; reason: "buffer_full" };

export type ChannelState = "idle" | "connecting" | "joining" | "joined" | "waiting" | "closed";

export interface ChannelStats {
  state: ChannelState;
  /** When the current join succeeded; null while not joined. */
  joinedAt: number | null;
  lastMessageAt: number | null;
  /** Sockets opened after the first. */
  reconnects: number;
  joinLatencyMs: number | null;
  malformed: number;
  dropped: number;
}

export interface ChannelTimers {
  joinTimeoutMs: number;
  heartbeatIntervalMs: number;
  connectTimeoutMs: number;
}

export interface ChannelOptions {
  /** Uniform in [0, 1): the backoff's jitter. Injected so tests replay exact schedules. */
  random: () => number;
  /** `phx_join`'s payload: Firezone's gateway and clients send `null`. */
  joinPayload?: unknown;
  /** Firezone's numbers unless a test on a real socket needs shorter ones. */
  timers?: Partial<ChannelTimers>;
}

interface Pending {
  event: string;
  payload: unknown;
}

export class PhoenixChannel<In extends { event: string }, Out extends { event: string; payload: unknown }> {
  private state: ChannelState = "idle";
  private readonly timers: ChannelTimers;
  private readonly frames: string[] = [];
  private readonly events: ChannelEvent<In>[] = [];
  private readonly buffer: Pending[] = [];

  private nextRef = 0;
  private joinRef: number | null = null;
  private joinSentAt = 0;
  private heartbeatRef: number | null = null;
  private heartbeatDue: number | null = null;
  private connectDeadline: number | null = null;
  private retryAt: number | null = null;
  private backoff: ReconnectBackoff | null = null;
  private attempt = 0;
  private lastFailure = "";

  private joinedAt: number | null = null;
  private lastMessageAt: number | null = null;
  private opened = 0;
  private joinLatencyMs: number | null = null;
  private malformed = 0;
  private dropped = 0;

  constructor(
    private readonly codec: Codec<In, Out>,
    private readonly options: ChannelOptions,
  ) {
    this.timers = {
      joinTimeoutMs: options.timers?.joinTimeoutMs ?? JOIN_TIMEOUT_MS,
      heartbeatIntervalMs: options.timers?.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS,
      connectTimeoutMs: options.timers?.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    };
  }

  get topic(): string {
    return this.codec.topic;
  }

  /** Connects now, dropping any current socket; the backoff starts over (Firezone's `connect`). Also
   * how the application asks for a fresh `init`, e.g. when it has no TURN server left. */
  connect(now: number): void {
    if (this.state === "closed") return;
    if (this.isSocketUp()) this.events.push({ kind: "close", reason: "reconnect requested" });
    this.backoff = null;
    this.open(now);
  }

  /** Graceful shutdown: the socket is closed and nothing more happens. */
  close(): void {
    if (this.state === "closed") return;
    if (this.isSocketUp()) this.events.push({ kind: "close", reason: "shutting down" });
    this.enterClosed();
  }

  /** Queues a message for the portal: written at once when joined, else held (at most 32). A message
   * that does not match its schema is a bug in the caller and throws. */
  send(message: Out, now: number): void {
    const schema = this.codec.egress[message.event];
    if (!schema) throw new Error(`portal: no outbound message "${message.event}" on topic ${this.codec.topic}`);
    const checked = schema.safeParse(message.payload);
    if (!checked.success) throw new Error(`portal: outbound ${message.event} ${describeIssue(checked.error)}`);
    if (this.state === "closed") return;
    if (this.state === "joined") {
      this.write(this.codec.topic, message.event, checked.data, now);
      return;
    }
    this.buffer.push({ event: message.event, payload: checked.data });
    if (this.buffer.length > MAX_BUFFERED_MESSAGES) {
      const old = this.buffer.shift()!;
      this.dropped++;
      this.events.push({ kind: "dropped", event: old.event, reason: "buffer_full" });
    }
  }

  /** The socket the last `open` asked for is up. */
  handleConnected(now: number): void {
    if (this.state !== "connecting") return;
    this.connectDeadline = null;
    this.nextRef = 0;
    this.heartbeatRef = null;
    this.sendJoin(now);
  }

  /** The current socket ended (or never opened). */
  handleDisconnected(end: SocketEnd, now: number): void {
    if (!this.isSocketUp()) return;
    if (end.kind === "http" && end.status >= 400 && end.status < 500 && end.status !== 429) {
      // Firezone: a client error on the upgrade is fatal — the token, id or URL is wrong, and
      // retrying the same request gives the same answer. (429 is "later", not "wrong".)
      const field = end.status === 401 || end.status === 403 ? "FIREZONE_TOKEN" : "FIREZONE_API_URL";
      this.fatal("unauthorized", EXIT_BAD_CONFIG, `portal refused the connection with HTTP ${end.status}${end.body ? ` (${end.body.slice(0, 200)})` : ""}: check ${field}`, false);
      return;
    }
    const why = end.kind === "http" ? `HTTP ${end.status} on upgrade` : end.kind === "closed" ? `socket closed${end.code ? ` (${end.code}${end.reason ? ` ${end.reason}` : ""})` : ""}` : end.message;
    this.reconnect(why, now, false);
  }

  handleMessage(text: string, now: number): void {
    if (!this.isSocketUp() || this.state === "connecting") return;
    this.lastMessageAt = now;
    const decoded = decodeFrame(text);
    if (!decoded.ok) {
      this.reportMalformed(decoded.fault.topic, decoded.fault.event, decoded.fault.ref, decoded.fault.issue);
      return;
    }
    const { topic, event, payload, ref } = decoded.frame;
    if (event === "phx_reply") {
      this.handleReply(topic, payload, ref, now);
      return;
    }
    if (topic !== this.codec.topic) {
      this.reportMalformed(topic, event, ref, `topic "${topic}" is not ours (${this.codec.topic})`);
      return;
    }
    switch (event) {
      case "phx_close":
        // The portal ended our channel; a fresh socket and join get a fresh `init`.
        this.reconnect("portal closed the channel (phx_close)", now, true);
        return;
      case "phx_error":
        // Firezone ignores it: a crashed channel answers our next push with "unmatched topic",
        // which rejoins.
        return;
      case "disconnect": {
        const reason = (payload as { reason?: unknown } | null)?.reason;
        if (reason === "token_expired") {
          this.fatal("token_expired", EXIT_BAD_CONFIG, "portal disconnected us: token_expired: set a new FIREZONE_TOKEN", true);
          return;
        }
        this.reportMalformed(topic, event, ref, `reason: ${JSON.stringify(reason)} is not a known disconnect reason`);
        return;
      }
    }
    const schema = this.codec.ingress[event];
    if (!schema) {
      this.reportMalformed(topic, event, ref, `event: "${event}" is not a message of topic ${topic}`);
      return;
    }
    const parsed = schema.safeParse(payload);
    if (!parsed.success) {
      this.reportMalformed(topic, event, ref, `payload.${describeIssue(parsed.error)}`);
      return;
    }
    this.events.push({ kind: "message", message: { event, payload: parsed.data } as unknown as In });
  }

  handleTimeout(now: number): void {
    if (this.state === "connecting" && this.connectDeadline !== null && now >= this.connectDeadline) {
      this.reconnect(`connecting timed out after ${this.timers.connectTimeoutMs} ms`, now, true);
      return;
    }
    if (this.state === "joining" && now >= this.joinSentAt + this.timers.joinTimeoutMs) {
      this.reconnect(`join of ${this.codec.topic} unanswered after ${this.timers.joinTimeoutMs} ms`, now, true);
      return;
    }
    if ((this.state === "joining" || this.state === "joined") && this.heartbeatDue !== null && now >= this.heartbeatDue) {
      if (this.heartbeatRef !== null) {
        // A heartbeat went a whole period without a reply: the socket is dead even if TCP has not noticed.
        this.reconnect("heartbeat unanswered", now, true);
        return;
      }
      this.heartbeatRef = this.write(PHOENIX_TOPIC, "heartbeat", {}, now);
    }
    if (this.state === "waiting" && this.retryAt !== null && now >= this.retryAt) this.open(now);
  }

  pollSend(): string | undefined {
    return this.frames.shift();
  }

  pollEvent(): ChannelEvent<In> | undefined {
    return this.events.shift();
  }

  pollTimeout(): number | undefined {
    switch (this.state) {
      case "connecting":
        return this.connectDeadline ?? undefined;
      case "joining":
        return Math.min(this.joinSentAt + this.timers.joinTimeoutMs, this.heartbeatDue ?? Infinity);
      case "joined":
        return this.heartbeatDue ?? undefined;
      case "waiting":
        return this.retryAt ?? undefined;
      default:
        return undefined;
    }
  }

  stats(): ChannelStats {
    return {
      state: this.state,
      joinedAt: this.joinedAt,
      lastMessageAt: this.lastMessageAt,
      reconnects: Math.max(0, this.opened - 1),
      joinLatencyMs: this.joinLatencyMs,
      malformed: this.malformed,
      dropped: this.dropped,
    };
  }

  // ---- internals ----

  private isSocketUp(): boolean {
    return this.state === "connecting" || this.state === "joining" || this.state === "joined";
  }

  private open(now: number): void {
    this.state = "connecting";
    this.opened++;
    this.retryAt = null;
    this.joinedAt = null;
    this.heartbeatDue = null;
    this.connectDeadline = now + this.timers.connectTimeoutMs;
    this.events.push({ kind: "open" });
  }

  private sendJoin(now: number): void {
    this.state = "joining";
    this.joinSentAt = now;
    this.joinedAt = null;
    this.joinRef = this.write(this.codec.topic, "phx_join", this.options.joinPayload ?? null, now);
  }

  private write(topic: string, event: string, payload: unknown, now: number): number {
    const ref = this.nextRef++;
    this.frames.push(encodeFrame(topic, event, payload, ref));
    this.heartbeatDue = now + this.timers.heartbeatIntervalMs; // Firezone resets the heartbeat on every send
    return ref;
  }

  private handleReply(topic: string, payload: unknown, ref: InboundRef, now: number): void {
    const reply = ReplySchema.safeParse(payload);
    if (!reply.success) {
      this.reportMalformed(topic, "phx_reply", ref, `payload.${describeIssue(reply.error)}`);
      return;
    }
    const n = refNumber(ref);
    const reason = errorReason(reply.data.response);
    if (n !== null && n === this.joinRef && topic === this.codec.topic && this.state === "joining") {
      if (reply.data.status === "error") {
        this.fatal("join_rejected", EXIT_RUNTIME, `portal rejected the join of ${topic}: ${reason}`, true);
        return;
      }
      this.joinRef = null;
      this.state = "joined";
      this.joinedAt = now;
      this.joinLatencyMs = now - this.joinSentAt;
      this.backoff = null; // a portal that lets us join has proven itself: the next loss retries at once
      this.attempt = 0;
      this.events.push({ kind: "joined", topic, latencyMs: this.joinLatencyMs });
      for (const m of this.buffer.splice(0)) this.write(this.codec.topic, m.event, m.payload, now);
      return;
    }
    if (n !== null && n === this.heartbeatRef && topic === PHOENIX_TOPIC) {
      this.heartbeatRef = null;
      return;
    }
    if (reply.data.status === "ok") return; // Firezone expects no content in replies to its pushes
    if (reason === "unmatched topic" && topic === this.codec.topic && this.state === "joined") {
      // The portal forgot our channel (it restarted it) but kept the socket: join again; messages
      // wait for the new join like after a reconnect.
      this.sendJoin(now);
      return;
    }
    this.events.push({ kind: "error_reply", topic, ref: n, reason });
  }

  /** A transient failure: drop the socket (if `closeSocket`, tell the shell) and schedule the next try. */
  private reconnect(why: string, now: number, closeSocket: boolean): void {
    if (closeSocket && this.isSocketUp()) this.events.push({ kind: "close", reason: why });
    this.lastFailure = why;
    this.joinRef = null;
    this.heartbeatRef = null;
    this.heartbeatDue = null;
    this.connectDeadline = null;
    this.joinedAt = null;
    let delay: number | undefined;
    if (this.backoff === null) {
      this.backoff = new ReconnectBackoff(now, this.options.random);
      delay = 0;
    } else {
      delay = this.backoff.next(now);
    }
    if (delay === undefined) {
      this.fatal("retries_exhausted", EXIT_RUNTIME, `gave up reconnecting to the portal after 15 minutes; last error: ${this.lastFailure}`, false);
      return;
    }
    this.attempt++;
    this.state = "waiting";
    this.retryAt = now + delay;
    this.events.push({ kind: "reconnect_scheduled", afterMs: delay, attempt: this.attempt, reason: why });
    if (delay === 0) this.open(now);
  }

  private fatal(reason: FatalReason, exitCode: number, message: string, closeSocket: boolean): void {
    if (closeSocket && this.isSocketUp()) this.events.push({ kind: "close", reason });
    this.enterClosed();
    this.events.push({ kind: "fatal", reason, exitCode, message });
  }

  private enterClosed(): void {
    this.state = "closed";
    this.frames.length = 0;
    this.buffer.length = 0;
    this.retryAt = this.connectDeadline = this.heartbeatDue = null;
    this.joinedAt = null;
  }

  private reportMalformed(topic: string | null, event: string | null, ref: InboundRef, issue: string): void {
    this.malformed++;
    this.events.push({ kind: "malformed", topic, event, ref, issue, count: this.malformed });
  }
}

/** `{"reason": "…"}` of an error reply, or the response itself in short. */
function errorReason(response: unknown): string {
  const r = (response as { reason?: unknown } | null)?.reason;
  if (typeof r === "string") return r;
  return JSON.stringify(response ?? null).slice(0, 200);
}
