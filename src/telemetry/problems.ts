// Named problems: patterns in tunnel events and drop counters that have one likely cause and one
// fix to try, said in words an operator acts on ("preshared key mismatch? check …") instead of a
// counter someone has to interpret. Sans-IO, beside the data path, never in it: events arrive on
// the control path, and everything counted per packet (mac1 failures, unknown keys, sources outside
// AllowedIPs) is read from counters and a small ring the tunnel already keeps, once per sample.
//
// Each problem is raised once (it then only counts and moves `last_seen`) and cleared when the
// evidence goes: a confirmed session, the peer gone, or quiet for `quietMs`. `poll()` hands the
// appearances and clearances to the shell, which logs and reports them — at most one log line and
// one Sentry event each, however many packets showed it.
import { encodeKey } from "../crypto/x25519.ts";
import { formatCidr, formatIp } from "../ip/address.ts";
import { MinHeap, type Connection, type Tunnel, type TunnelEvent } from "../tunnel/index.ts";
import { formatEndpoint } from "../wire/index.ts";
import { Throttle } from "./throttle.ts";

export const PROBLEM_KINDS = [
  "psk_mismatch",
  "wrong_gateway_key",
  "unknown_key",
  "allowed_ips",
  "duplicate_address",
  "never_connected",
  "endpoint_unreachable",
] as const;
export type ProblemKind = (typeof PROBLEM_KINDS)[number];

export interface Problem {
  kind: ProblemKind;
  cid?: number;
  public_key?: string;
  /** Where it comes from: a UDP source address, or an inner address outside AllowedIPs. */
  source?: string;
  title: string;
  likely_cause: string;
  fix: string;
  /** Unix ms (the `now` passed in). */
  since: number;
  last_seen: number;
  count: number;
  /** Made where the problem was detected: its stack is what Sentry shows. */
  error: Error;
}

/** The admin's (and the API's) shape: snake_case, times as ISO 8601, absent fields null. */
export interface ProblemView {
  kind: ProblemKind;
  cid: number | null;
  public_key: string | null;
  source: string | null;
  title: string;
  likely_cause: string;
  fix: string;
  since: string;
  last_seen: string;
  count: number;
}

/** `superseded_by`: cleared because a more specific problem of the same connection explains it. */
export type ProblemChange = { type: "appeared" | "cleared"; problem: Problem; superseded_by?: ProblemKind };

/**
 * A connection's problems that say why it never connected: "never connected" (a guess: not
 * installed, not started, or no reach) adds nothing beside them and its guess would mislead.
 */
const EXPLAINS_NEVER_CONNECTED: readonly ProblemKind[] = ["psk_mismatch", "endpoint_unreachable"];

export interface ProblemOptions {
  /** This gateway's public key (base64), named in the wrong-key fix. */
  gatewayPublicKey: string;
  /** Responses in a row without a confirmed session before a preshared-key mismatch is named. */
  unconfirmedResponses?: number;
  /** Initiations in a row to an endpoint without a response before it is named unreachable. */
  unansweredInitiations?: number;
  /** A peer without a confirmed session this long after it was created "never connected". */
  neverConnectedMs?: number;
  /** Source-keyed problems (no later evidence clears them) clear after this long without any. */
  quietMs?: number;
  /** At most this many problems (spoofed sources must not grow it without bound). */
  max?: number;
  /**
   * New problems named by source address alone (wrong gateway key, unknown key) per minute: each
   * is a log line and a Sentry event, and sources are free to spoof. The rest are only counted.
   */
  newSourcesPerMinute?: number;
}

export const UNCONFIRMED_RESPONSES = 3; // wireguard-go retries every REKEY_TIMEOUT (5 s): ~15 s
export const UNANSWERED_INITIATIONS = 3; // ~15 s of REKEY_TIMEOUT retries, well before the 90 s give-up
export const NEVER_CONNECTED_MS = 10 * 60_000;
export const QUIET_MS = 5 * 60_000;
const MAX_PROBLEMS = 256;
const NEW_SOURCES_PER_MINUTE = 10;

interface PeerWatch {
  publicKey: string;
  createdAt: number;
  confirmed: boolean;
  unconfirmed: number;
  /** Initiations the gateway sent in a row without a response (keepalives restart a retry round, so attempt numbers cannot tell). */
  unanswered: number;
  /** The operator configured an Endpoint: initiations going unanswered there is a problem (one learnt from a roaming client going quiet is not). */
  configuredEndpoint: boolean;
  /** rejectedSources.count at the last sample. */
  rejected: number;
}

export class ProblemDetector {
  readonly #opts: Required<ProblemOptions>;
  readonly #problems = new Map<string, Problem>();
  readonly #peers = new Map<number, PeerWatch>();
  /**
   * When each peer's "never connected" falls due (createdAt + neverConnectedMs), by cid: a sample
   * looks at the peers due, not at every configured one every second. Entries of peers gone or
   * confirmed meanwhile are dropped when they surface.
   */
  readonly #neverConnectedDue = new MinHeap<number>();
  #changes: ProblemChange[] = [];
  #dropSeq = 0;
  readonly #newSources: Throttle;
  /** Drops from sources not named as a problem because of `newSourcesPerMinute` (counted, not said). */
  suppressedSources = 0;

  constructor(opts: ProblemOptions) {
    this.#opts = {
      unconfirmedResponses: UNCONFIRMED_RESPONSES,
      unansweredInitiations: UNANSWERED_INITIATIONS,
      neverConnectedMs: NEVER_CONNECTED_MS,
      quietMs: QUIET_MS,
      max: MAX_PROBLEMS,
      newSourcesPerMinute: NEW_SOURCES_PER_MINUTE,
      ...opts,
    };
    this.#newSources = new Throttle({ windowMs: 60_000, burst: this.#opts.newSourcesPerMinute });
  }

  /**
   * A peer entered the data plane (or its config changed); `createdAt` is when it was created (the
   * store row, or start); `configuredEndpoint` whether the operator gave it an Endpoint.
   */
  peerAdded(cid: number, publicKey: string, createdAt: number, configuredEndpoint = false): void {
    const known = this.#peers.get(cid);
    if (known) known.configuredEndpoint = configuredEndpoint;
    else {
      this.#peers.set(cid, { publicKey, createdAt, confirmed: false, unconfirmed: 0, unanswered: 0, configuredEndpoint, rejected: 0 });
      this.#neverConnectedDue.push(createdAt + this.#opts.neverConnectedMs, cid);
    }
  }

  /** The peer left the data plane: its problems go with it. */
  peerRemoved(cid: number, now: number): void {
    this.#peers.delete(cid);
    for (const [id, p] of this.#problems) if (p.cid === cid) this.#clear(id, now);
  }

  /**
   * Forgets connections the tunnel no longer has (a changed preshared key replaces a connection
   * under a new cid): their problems go with them.
   */
  retain(isLive: (cid: number) => boolean, now: number): void {
    for (const cid of [...this.#peers.keys()]) if (!isLive(cid)) this.peerRemoved(cid, now);
  }

  onEvent(e: TunnelEvent, now: number): void {
    const w = this.#peers.get(e.cid);
    if (!w) return;
    switch (e.type) {
      case "handshake_completed":
        // Any answer, even one to the peer's own initiation, shows the endpoint is alive.
        w.unanswered = 0;
        if (e.role === "initiator") this.#confirmed(e.cid, w, now);
        else if (++w.unconfirmed >= this.#opts.unconfirmedResponses) {
          this.#raise(`psk_mismatch|${e.cid}`, now, w.unconfirmed, () => ({
            kind: "psk_mismatch",
            cid: e.cid,
            public_key: w.publicKey,
            source: formatEndpoint(e.remote),
            title: "Handshakes are never confirmed (preshared key mismatch?)",
            likely_cause: `The gateway answered ${w.unconfirmed} handshakes in a row from this peer, but the client never sent a packet on any of them: it could not use the response. Most often its PresharedKey differs from the gateway's for this peer.`,
            fix: "Make the client's [Peer] PresharedKey equal to this peer's preshared key on the gateway (or remove it on both sides), e.g. by installing the peer's client config again.",
          }), { total: true });
        }
        break;
      case "session_confirmed":
        this.#confirmed(e.cid, w, now);
        break;
      case "handshake_initiated":
        // The one just sent cannot have been answered yet: it counts from the next one on.
        if (++w.unanswered > this.#opts.unansweredInitiations && w.configuredEndpoint) this.#unanswered(e.cid, w, formatEndpoint(e.to), w.unanswered - 1, now);
        break;
      default:
        break;
    }
  }

  #confirmed(cid: number, w: PeerWatch, now: number): void {
    w.confirmed = true;
    w.unconfirmed = 0;
    w.unanswered = 0;
    for (const kind of ["psk_mismatch", "never_connected", "endpoint_unreachable"] as const) this.#clear(`${kind}|${cid}`, now);
  }

  #unanswered(cid: number, w: PeerWatch, endpoint: string | undefined, unanswered: number, now: number): void {
    const at = endpoint ?? this.#problems.get(`endpoint_unreachable|${cid}`)?.source ?? "its endpoint";
    this.#raise(`endpoint_unreachable|${cid}`, now, unanswered, () => ({
      kind: "endpoint_unreachable",
      cid,
      public_key: w.publicKey,
      source: endpoint,
      title: `Endpoint ${at} does not answer`,
      likely_cause: `The gateway sent ${unanswered} handshake initiations to this peer's Endpoint ${at} and got no response: the peer is down, the address or port is wrong, or a firewall drops the UDP packets.`,
      fix: `Check the peer is up and listens on ${at} (wg show on the peer), correct the peer's Endpoint, or remove the Endpoint so the peer connects to the gateway instead.`,
    }), { total: true, source: endpoint });
  }

  /**
   * Reads what the data path counted since the last sample (drops by source, inner sources outside
   * AllowedIPs) and checks the time-based problems. Call it once per turn or per second, with
   * `touched` the connections the tunnel listed since the last call (Tunnel.takeTouched): the
   * others have no new evidence. Without it, every connection is looked at.
   */
  sample(tunnel: Tunnel, now: number, touched?: Iterable<Connection>): void {
    for (const d of tunnel.handshakeDropsSince(this.#dropSeq)) {
      this.#dropSeq = d.seq;
      if (d.reason === "mac1") {
        this.#raise(`wrong_gateway_key|${d.address}`, now, 1, () => ({
          kind: "wrong_gateway_key",
          source: d.address,
          title: `Handshakes for another public key from ${d.address}`,
          likely_cause: `Initiations from ${d.address} fail the mac1 check: they were made for a different gateway public key. A client there has the wrong [Peer] PublicKey (or the traffic is meant for another WireGuard server).`,
          fix: `Set the client's [Peer] PublicKey to this gateway's public key ${this.#opts.gatewayPublicKey}.`,
        }));
      } else {
        const key = d.publicKey ? encodeKey(d.publicKey) : "";
        this.#raise(`unknown_key|${d.address}|${key}`, now, 1, () => ({
          kind: "unknown_key",
          public_key: key || undefined,
          source: d.address,
          title: `Unknown client key knocking from ${d.address}`,
          likely_cause: `A valid handshake for this gateway from ${d.address} carried the public key ${key}, which no peer has: a peer that was deleted or never added, or a client that generated a new key.`,
          fix: `Add a peer with public key ${key}, or put the peer's key into the client's [Interface] PrivateKey; if you do not know this client, block ${d.address}.`,
        }));
      }
    }
    // Sources outside AllowedIPs are counted on the data path, which lists the connection as touched.
    for (const c of touched ?? tunnel.connections()) {
      const w = c.removed ? undefined : this.#peers.get(c.cid);
      if (!w) continue;
      const r = c.rejectedSources;
      if (r.count !== w.rejected) {
        const n = r.count - w.rejected;
        w.rejected = r.count;
        const source = r.family === 0 ? "(unparsable)" : formatIp(r.last.subarray(0, r.family === 4 ? 4 : 16));
        const allowed = c.allowedIPs.map(formatCidr).join(", ") || "(none)";
        this.#raise(`allowed_ips|${c.cid}`, now, n, () => ({
          kind: "allowed_ips",
          cid: c.cid,
          public_key: w.publicKey,
          source,
          title: `Packets from ${source}, outside the peer's AllowedIPs`,
          likely_cause: `The peer sent packets from ${source}, which is not in its AllowedIPs (${allowed}), so they were dropped: the client's [Interface] Address differs from the one assigned here, or it forwards other networks into the tunnel.`,
          fix: `Set the client's Address inside ${allowed}, or add ${source} to this peer's AllowedIPs if it should send from there.`,
        }), { source });
      }
    }
    this.#neverConnected(now);
    // Evidence that only ever arrives (no event says it stopped): quiet long enough means gone.
    for (const [id, p] of this.#problems) {
      if ((p.kind === "wrong_gateway_key" || p.kind === "unknown_key" || p.kind === "allowed_ips") && now - p.last_seen > this.#opts.quietMs) this.#clear(id, now);
    }
  }

  /** Peers whose "never connected" deadline passed: raised unless confirmed, gone, or explained. */
  #neverConnected(now: number): void {
    const due = this.#neverConnectedDue;
    while (due.size > 0 && due.peekAt() <= now) {
      const cid = due.pop()!;
      const w = this.#peers.get(cid);
      // Gone, confirmed, or a cid reused by a younger peer (whose own entry is still ahead).
      if (!w || w.confirmed || now - w.createdAt < this.#opts.neverConnectedMs || this.#problems.has(`never_connected|${cid}`)) continue;
      if (EXPLAINS_NEVER_CONNECTED.some((k) => this.#problems.has(`${k}|${cid}`))) {
        // Explained for now; asked again next second, as long as the explanation stands.
        this.#laterNeverConnected.push(cid);
        continue;
      }
      const s = Math.floor((now - w.createdAt) / 1000);
      const age = s < 120 ? `${s} s` : s < 7200 ? `${Math.floor(s / 60)} min` : `${Math.floor(s / 3600)} h`;
      this.#raise(`never_connected|${cid}`, now, 1, () => ({
        kind: "never_connected",
        cid,
        public_key: w.publicKey,
        title: "Never connected since it was created",
        likely_cause: `No session with this peer was ever confirmed, ${age} after it was created: the client config was never installed or started, or the client cannot reach the gateway's UDP port.`,
        fix: "Install the peer's client config and start the tunnel; check the client reaches the gateway's public endpoint and that the UDP port is open (firewall, NAT port forward).",
      }));
    }
    for (const cid of this.#laterNeverConnected) due.push(now + 1000, cid);
    this.#laterNeverConnected.length = 0;
  }

  readonly #laterNeverConnected: number[] = [];

  /** Store peers kept out because their tunnel address is taken (peer-sync), replacing the last set. */
  setAddressClashes(clashes: { peer: string; publicKey: string; address: string; other: string }[], now: number): void {
    const current = new Set<string>();
    for (const c of clashes) {
      const id = `duplicate_address|${c.publicKey}`;
      current.add(id);
      this.#raise(id, now, 0, () => ({
        kind: "duplicate_address",
        public_key: c.publicKey,
        source: c.address,
        title: `Tunnel address ${c.address} is already taken`,
        likely_cause: `Peer "${c.peer}" claims ${c.address}, which ${c.other} already has: the gateway keeps this peer out of the data plane, as every packet it sent would be dropped.`,
        fix: `Give peer "${c.peer}" a free address on the Peers page (or remove the other claim), then reconnect its client with the new config.`,
      }));
    }
    for (const [id, p] of this.#problems) if (p.kind === "duplicate_address" && !current.has(id)) this.#clear(id, now);
  }

  /**
   * `count`: new evidence to add, or with `total` the whole count so far (events that carry their
   * own running count: responses in a row, initiation attempts).
   */
  #raise(id: string, now: number, count: number, make: () => Omit<Problem, "since" | "last_seen" | "count" | "error">, opts: { source?: string; total?: boolean } = {}): void {
    const known = this.#problems.get(id);
    if (known) {
      known.last_seen = now;
      known.count = opts.total ? Math.max(known.count, count) : known.count + count;
      if (opts.source !== undefined) known.source = opts.source;
      return;
    }
    if ((id.startsWith("wrong_gateway_key|") || id.startsWith("unknown_key|")) && this.#newSources.admit("sources", now) === undefined) {
      this.suppressedSources++;
      return;
    }
    if (this.#problems.size >= this.#opts.max) {
      // Full (a spoofed flood of sources): the one quiet longest makes room, said as cleared.
      let oldest: [string, Problem] | undefined;
      for (const e of this.#problems) if (!oldest || e[1].last_seen < oldest[1].last_seen) oldest = e;
      if (oldest) this.#clear(oldest[0], now);
    }
    const p = make();
    // The stack of this Error is the path by which the problem was detected (Sentry shows it).
    const error = new Error(p.title);
    error.name = p.kind;
    const problem: Problem = { ...p, since: now, last_seen: now, count: Math.max(count, 1), error };
    this.#problems.set(id, problem);
    this.#changes.push({ type: "appeared", problem });
    if (p.cid !== undefined && EXPLAINS_NEVER_CONNECTED.includes(p.kind)) this.#clear(`never_connected|${p.cid}`, now, p.kind);
  }

  #clear(id: string, now: number, supersededBy?: ProblemKind): void {
    const p = this.#problems.get(id);
    if (!p) return;
    this.#problems.delete(id);
    p.last_seen = Math.max(p.last_seen, now);
    this.#changes.push({ type: "cleared", problem: p, ...(supersededBy && { superseded_by: supersededBy }) });
  }

  /** Appearances and clearances since the last call, in order. */
  pollChange(): ProblemChange | undefined {
    return this.#changes.shift();
  }

  /** How many problems of each kind (every kind listed, zeros included). */
  counts(): [ProblemKind, number][] {
    const n = new Map<ProblemKind, number>(PROBLEM_KINDS.map((k) => [k, 0]));
    for (const p of this.#problems.values()) n.set(p.kind, n.get(p.kind)! + 1);
    return [...n];
  }

  problems(): Problem[] {
    return [...this.#problems.values()];
  }
}

export function problemView(p: Problem): ProblemView {
  return {
    kind: p.kind,
    cid: p.cid ?? null,
    public_key: p.public_key ?? null,
    source: p.source ?? null,
    title: p.title,
    likely_cause: p.likely_cause,
    fix: p.fix,
    since: new Date(p.since).toISOString(),
    last_seen: new Date(p.last_seen).toISOString(),
    count: p.count,
  };
}
