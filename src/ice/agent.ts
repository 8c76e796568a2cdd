// The ICE agent for one connection (RFC 8445). The gateway's is *controlled* (the client nominates);
// a client runs it *controlling* (`role: "controlling"`, agent-role.ts): it nominates by regular
// nomination and resolves role conflicts with the tie-breaker.
// Sans-IO: datagrams come in with the time, checks and answers go out as transmits the node sends
// from the named local base (a host socket, or a TURN allocation for relay candidates), and every
// timer fires in handleTimeout. Behaviour and timers follow Firezone's snownet (str0m underneath),
// so a client and this gateway agree on when a path is dead:
// - every pair is checked with retransmits at 250 ms doubling to 1.5 s, 12 sends (15.25 s);
// - the nominated pair is re-checked every 1.5 s while traffic flows; 20 s without traffic makes the
//   connection idle: one check every 25 s, 4 unanswered (100 s) end it;
// - a connection whose pairs all failed is disconnected, and failed 2 s later unless it recovers;
//   a connection that has had nothing to check for 10 s has failed.
import type { TargetLogger } from "../telemetry/log.ts";
import type { Endpoint } from "../wire/cookie.ts";
import { formatEndpoint } from "../wire/cookie.ts";
import { candidatePriority, formatCandidate, localCandidate, parseCandidate, sameCandidate, type Candidate } from "./candidate.ts";
import {
  DISCONNECT_GRACE_MS,
  IDLE_AFTER_MS,
  IDLE_RETRANSMITS,
  IDLE_RTO_MS,
  MAX_OPTIMISTIC_CANDIDATES,
  MAX_RETRANSMITS,
  MAX_RTO_MS,
  NO_CANDIDATES_TIMEOUT_MS,
  checkTimeout,
  retransmitDelay,
} from "./agent-constants.ts";
import { transactionKey } from "./stun.ts";
import { optimisticCandidates } from "./optimistic.ts";
import { decodeBinding, encodeBindingError, encodeBindingRequest, encodeBindingSuccess, type BindingMessage } from "./agent-messages.ts";
import { nominationChoice, otherRole, pairPriorityFor, roleVerdict, type IceRole } from "./agent-role.ts";
import { byPriority, formatPair, remoteEndpoint, sameFamily, viewOfLocal, viewOfPair, viewOfRemote, type CandidateView, type Check, type LocalBase, type Pair, type PairState, type PairView, type RemoteCandidate } from "./agent-pairs.ts";

export interface IceCredentials {
  ufrag: string;
  pwd: string;
}

export type ConnectionState = "checking" | "connected" | "idle" | "disconnected" | "failed";

/** The selected pair as the data path needs it: send from `from` (through allocation `relay`, if set) to `to`. */
export interface IceRoute {
  from: Endpoint;
  relay?: string;
  to: Endpoint;
}

/** A datagram to send: from `from` (a host socket address, or via the TURN allocation `relay`) to `to`. */
export interface IceTransmit {
  from: Endpoint;
  relay?: string;
  to: Endpoint;
  data: Uint8Array;
}

export type IceEvent =
  | { kind: "candidate"; side: "local" | "remote"; action: "added" | "invalidated" | "learned"; candidate: CandidateView }
  | { kind: "candidate_refused"; text: string; reason: string }
  | { kind: "pair_state"; pair: PairView; from: PairState | "new"; to: PairState | "removed" }
  | { kind: "nominated"; pair: PairView }
  | { kind: "state"; state: ConnectionState; reason?: string };

/** Why an input was not used; counted per agent, like the wire layer's drop reasons. */
export type IceDropReason =
  | "not_stun"
  | "malformed"
  | "unknown_transaction"
  | "wrong_username"
  | "bad_integrity"
  | "missing_attributes"
  | "role_conflict"
  | "response_from_elsewhere"
  | "unknown_local"
  | "no_remote_credentials"
  | "after_failure";

export interface IceAgentOptions {
  local: IceCredentials;
  remote?: IceCredentials;
  now: number;
  log?: TargetLogger;
  /** Fills transaction ids; crypto.getRandomValues unless a test wants a seeded world. */
  random?: (into: Uint8Array) => void;
  /** Connection id for log lines. */
  cid?: string;
  /**
   * Default "controlled", and then for good (the gateway). "controlling" nominates, and may turn
   * controlled (and back) when the tie-breaker says so in a role conflict.
   */
  role?: IceRole;
}

/** What handleInput did with a datagram: `not_mine` lets the node offer it to another agent. */
export type IceInput = "consumed" | "not_mine";

export class IceAgent {
  readonly local: IceCredentials;
  #remote: IceCredentials | undefined;
  readonly #log: TargetLogger | undefined;
  readonly #random: (into: Uint8Array) => void;
  readonly #cid: string | undefined;
  readonly #tieBreaker: bigint;
  #role: IceRole;
  /** Created controlled: never switches roles (the gateway). */
  readonly #fixedRole: boolean;

  #locals: LocalBase[] = [];
  /** Local srflx candidates: signalled to the peer, checked through their host base (RFC 8445 §6.1.2.4). */
  #reflexive: Candidate[] = [];
  #remotes: RemoteCandidate[] = [];
  #pairs: Pair[] = [];
  #nextPairId = 1;
  #transactions = new Map<string, Pair>();

  #state: ConnectionState = "checking";
  #selected: Pair | undefined;
  #route: IceRoute | undefined;
  #lastTrafficAt: number;
  /** While nothing can be checked: since when (the 10 s failure clock). */
  #nothingToCheckSince: number | undefined;
  #disconnectedAt: number | undefined;

  #transmits: IceTransmit[] = [];
  #events: IceEvent[] = [];
  readonly drops: Record<IceDropReason, number> = {
    not_stun: 0,
    malformed: 0,
    unknown_transaction: 0,
    wrong_username: 0,
    bad_integrity: 0,
    missing_attributes: 0,
    role_conflict: 0,
    response_from_elsewhere: 0,
    unknown_local: 0,
    no_remote_credentials: 0,
    after_failure: 0,
  };

  constructor(opts: IceAgentOptions) {
    this.local = opts.local;
    this.#remote = opts.remote;
    this.#log = opts.log;
    this.#random = opts.random ?? ((b) => void crypto.getRandomValues(b));
    this.#cid = opts.cid;
    this.#lastTrafficAt = opts.now;
    this.#nothingToCheckSince = opts.now;
    const tb = new Uint8Array(8);
    this.#random(tb);
    this.#tieBreaker = new DataView(tb.buffer).getBigUint64(0);
    this.#role = opts.role ?? "controlled";
    this.#fixedRole = this.#role === "controlled";
  }

  get role(): IceRole {
    return this.#role;
  }

  /** RFC 8445 §7.2.5.1, §7.3.1.1: the tie-breaker lost, the other role is ours. Priorities follow. */
  #switchRole(now: number, why: string): void {
    this.#role = otherRole(this.#role);
    this.#log?.info("ice role switched", { cid: this.#cid, role: this.#role, why });
    for (const p of this.#pairs) {
      p.priority = pairPriorityFor(this.#role, p.local.candidate.priority, p.remote.candidate.priority);
      p.nominate = false;
      if (this.#role === "controlled" && p !== this.#selected) p.nominated = false;
    }
    this.#pairs.sort(byPriority);
    if (this.#role === "controlling") this.#nominateBest(now);
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The pair data goes over, once the controlling side nominated one that works. */
  get selected(): PairView | undefined {
    return this.#selected && viewOfPair(this.#selected);
  }

  /** Where WireGuard datagrams go now. Built once per selection, so the data path may read it per packet. */
  get route(): IceRoute | undefined {
    return this.#route;
  }

  #select(pair: Pair | undefined): void {
    this.#selected = pair;
    if (!pair) this.#route = undefined;
    else this.#route = pair.local.relay !== undefined ? { from: pair.local.base, relay: pair.local.relay, to: remoteEndpoint(pair) } : { from: pair.local.base, to: remoteEndpoint(pair) };
  }

  pairs(): PairView[] {
    return [...this.#pairs].sort(byPriority).map(viewOfPair);
  }

  localCandidates(): Candidate[] {
    return [...this.#locals.map((l) => l.candidate), ...this.#reflexive];
  }

  setRemoteCredentials(remote: IceCredentials): void {
    this.#remote = remote;
  }

  // ---- candidates --------------------------------------------------------------------------

  /**
   * Adds a local candidate. Host candidates are their own base; relay candidates name the TURN
   * allocation (`relay`) that sends for them; srflx candidates are only signalled (checks go out
   * from their host base, which must be added as a host candidate). Returns the candidate to signal.
   */
  addLocalCandidate(candidate: Candidate, now: number, relay?: string): Candidate {
    if (candidate.type === "srflx" || candidate.type === "prflx") {
      if (!this.#reflexive.some((c) => sameCandidate(c, candidate))) {
        this.#reflexive.push(candidate);
        this.#emit({ kind: "candidate", side: "local", action: "added", candidate: { type: candidate.type, address: candidate.address, port: candidate.port, priority: candidate.priority } });
      }
      return candidate;
    }
    if (this.#locals.some((l) => sameCandidate(l.candidate, candidate))) return candidate;
    const local: LocalBase = { candidate, base: { address: candidate.address, port: candidate.port } };
    if (candidate.type === "relay") local.relay = relay ?? `${candidate.address}:${candidate.port}`;
    this.#locals.push(local);
    this.#emit({ kind: "candidate", side: "local", action: "added", candidate: viewOfLocal(local) });
    for (const r of this.#remotes) this.#formPair(local, r, now);
    return candidate;
  }

  /** A local candidate went away (interface down, allocation lost): its pairs go with it. */
  invalidateLocalCandidate(candidate: Candidate, now: number): void {
    this.#reflexive = this.#reflexive.filter((c) => !sameCandidate(c, candidate));
    const gone = this.#locals.filter((l) => sameCandidate(l.candidate, candidate));
    if (!gone.length) return;
    this.#locals = this.#locals.filter((l) => !gone.includes(l));
    for (const l of gone) this.#emit({ kind: "candidate", side: "local", action: "invalidated", candidate: viewOfLocal(l) });
    this.#removePairs((p) => gone.includes(p.local), now);
  }

  /** Adds a remote candidate from its SDP text; a faulty one is logged once and skipped. */
  addRemoteCandidateText(text: string, now: number): Candidate | undefined {
    const r = parseCandidate(text);
    if (!r.ok) {
      this.#log?.warn("remote candidate skipped", { cid: this.#cid, candidate: text, reason: r.reason });
      this.#emit({ kind: "candidate_refused", text, reason: r.reason });
      return undefined;
    }
    this.addRemoteCandidate(r.candidate, now);
    return r.candidate;
  }

  addRemoteCandidate(candidate: Candidate, now: number): void {
    const known = this.#remotes.find((r) => r.candidate.address === candidate.address && r.candidate.port === candidate.port);
    if (known) {
      // The peer signalled what we had guessed (optimistic) or learnt from a check (prflx): the
      // signalled type and priority win, and its pairs are re-ranked.
      if (known.optimistic || known.candidate.type === "prflx") {
        known.optimistic = false;
        known.candidate = candidate;
        for (const p of this.#pairs) if (p.remote === known) p.priority = pairPriorityFor(this.#role, p.local.candidate.priority, candidate.priority);
        this.#pairs.sort(byPriority);
      }
      return;
    }
    this.#addRemote({ candidate }, now);
    if (candidate.type === "srflx" || candidate.type === "host") this.#addOptimistic(now);
  }

  invalidateRemoteCandidateText(text: string, now: number): void {
    const r = parseCandidate(text);
    if (r.ok) this.invalidateRemoteCandidate(r.candidate, now);
  }

  invalidateRemoteCandidate(candidate: Candidate, now: number): void {
    const gone = this.#remotes.filter((r) => sameCandidate(r.candidate, candidate));
    if (!gone.length) return;
    this.#remotes = this.#remotes.filter((r) => !gone.includes(r));
    for (const r of gone) this.#emit({ kind: "candidate", side: "remote", action: "invalidated", candidate: viewOfRemote(r) });
    this.#removePairs((p) => gone.includes(p.remote), now);
  }

  #addRemote(remote: RemoteCandidate, now: number): void {
    this.#remotes.push(remote);
    this.#emit({ kind: "candidate", side: "remote", action: "added", candidate: viewOfRemote(remote) });
    for (const l of this.#locals) this.#formPair(l, remote, now);
  }

  /** Guessed remote candidates (optimistic.ts), checked like signalled ones. */
  #addOptimistic(now: number): void {
    for (const candidate of optimisticCandidates(this.#remotes, MAX_OPTIMISTIC_CANDIDATES)) this.#addRemote({ candidate, optimistic: true }, now);
  }

  #formPair(local: LocalBase, remote: RemoteCandidate, now: number): Pair | undefined {
    if (!sameFamily(local.candidate.address, remote.candidate.address)) return undefined;
    const existing = this.#pairs.find((p) => p.local === local && p.remote.candidate.address === remote.candidate.address && p.remote.candidate.port === remote.candidate.port);
    if (existing) return existing;
    const pair: Pair = {
      id: this.#nextPairId++,
      local,
      remote,
      priority: pairPriorityFor(this.#role, local.candidate.priority, remote.candidate.priority),
      state: "waiting",
      nominated: false,
      triggered: false,
    };
    this.#pairs.push(pair);
    this.#pairs.sort(byPriority);
    this.#nothingToCheckSince = undefined;
    this.#emit({ kind: "pair_state", pair: viewOfPair(pair), from: "new", to: "waiting" });
    if (this.#state === "disconnected") this.#setState("checking", now, "new candidate pair");
    return pair;
  }

  #removePairs(which: (p: Pair) => boolean, now: number): void {
    const gone = this.#pairs.filter(which);
    if (!gone.length) return;
    this.#pairs = this.#pairs.filter((p) => !gone.includes(p));
    for (const p of gone) {
      this.#forgetTransactions(p);
      this.#emit({ kind: "pair_state", pair: viewOfPair(p), from: p.state, to: "removed" });
    }
    if (this.#selected && gone.includes(this.#selected)) this.#selectedLost(now, "selected pair's candidate invalidated");
    if (!this.#pairs.length && this.#nothingToCheckSince === undefined) this.#nothingToCheckSince = now;
    this.#checkAllFailed(now);
  }

  // ---- traffic -----------------------------------------------------------------------------

  /** The node saw data (WireGuard) on this connection, either way: keeps it out of idle. */
  noteTraffic(now: number): void {
    this.#lastTrafficAt = now;
    if (this.#state === "idle") {
      this.#setState("connected", now, "traffic");
      // Idle checks were 25 s apart: make sure the path still works now that it is used again.
      const p = this.#selected;
      if (p) {
        p.nextConsentAt = now;
        if (p.check) p.check.nextAt = now;
        if (p.unansweredSince !== undefined) p.unansweredSince = now; // the active timeout counts from here
      }
    }
  }

  // ---- input -------------------------------------------------------------------------------

  /**
   * A datagram that arrived at local address `at` (a host socket address, or a relayed address:
   * then `relay` names the allocation) from `from`.
   */
  handleInput(data: Uint8Array, from: Endpoint, at: Endpoint, now: number, relay?: string): IceInput {
    const msg = decodeBinding(data);
    if ("drop" in msg) return this.#drop(msg.drop === "not_stun" || msg.drop === "bad_cookie" || msg.drop === "truncated" ? "not_stun" : "malformed", "not_mine", msg.drop);
    return this.handleBinding(msg, from, at, now, relay);
  }

  /** handleInput for a message the node already decoded (it parses once to pick the agent: `bindingRoute`). */
  handleBinding(msg: BindingMessage, from: Endpoint, at: Endpoint, now: number, relay?: string): IceInput {
    if (msg.class === "request") return this.#onRequest(msg, from, at, now, relay);
    return this.#onResponse(msg, from, at, now, relay);
  }

  /** Whether a response with this transaction id (stun.ts `transactionKey`) answers one of our checks. */
  ownsTransaction(key: string): boolean {
    return this.#transactions.has(key);
  }

  #drop(reason: IceDropReason, result: IceInput, detail?: string): IceInput {
    this.drops[reason]++;
    if (this.#log?.enabled("trace")) this.#log.trace("stun dropped", { cid: this.#cid, reason, detail });
    return result;
  }

  #findLocal(at: Endpoint, relay: string | undefined): LocalBase | undefined {
    if (relay !== undefined) return this.#locals.find((l) => l.relay === relay);
    const exact = this.#locals.find((l) => l.relay === undefined && l.base.address === at.address && l.base.port === at.port);
    if (exact) return exact;
    // A socket bound to the wildcard address knows its port, not which address a datagram hit.
    return this.#locals.find((l) => arrivedAt(l, at, undefined));
  }

  #onRequest(msg: BindingMessage, from: Endpoint, at: Endpoint, now: number, relay: string | undefined): IceInput {
    const username = msg.username;
    if (username === undefined || !username.startsWith(this.local.ufrag + ":")) return this.#drop("wrong_username", "not_mine");
    if (this.#remote && username !== `${this.local.ufrag}:${this.#remote.ufrag}`) return this.#drop("wrong_username", "not_mine");
    if (!msg.verify(this.local.pwd)) return this.#drop("bad_integrity", "consumed");
    if (this.#state === "failed") return this.#drop("after_failure", "consumed");
    const local = this.#findLocal(at, relay);
    if (!local) return this.#drop("unknown_local", "consumed");
    if (msg.priority === undefined) {
      this.#reply(local, from, encodeBindingError(msg.transactionId, 400, "PRIORITY missing", this.local.pwd));
      return this.#drop("missing_attributes", "consumed");
    }
    const verdict = roleVerdict(this.#role, this.#fixedRole, this.#tieBreaker, msg);
    if (verdict === "conflict") {
      // Both sides claim one role and ours stays (the gateway never takes control): the peer must switch.
      this.#reply(local, from, encodeBindingError(msg.transactionId, 487, "Role Conflict", this.local.pwd));
      return this.#drop("role_conflict", "consumed");
    }
    if (verdict === "switch") this.#switchRole(now, "role conflict in a request: the peer's tie-breaker won");
    this.#reply(local, from, encodeBindingSuccess(msg.transactionId, from, this.local.pwd));

    // RFC 8445 §7.3.1.3: a source we do not know is a peer-reflexive candidate of the peer.
    let remote = this.#remotes.find((r) => r.candidate.address === from.address && r.candidate.port === from.port);
    if (!remote) {
      const candidate: Candidate = { foundation: "prflx", component: 1, transport: "udp", priority: msg.priority, address: from.address, port: from.port, type: "prflx" };
      remote = { candidate };
      this.#remotes.push(remote);
      this.#log?.debug("peer-reflexive candidate learnt", { cid: this.#cid, remote: formatEndpoint(from), priority: msg.priority });
      this.#emit({ kind: "candidate", side: "remote", action: "learned", candidate: viewOfRemote(remote) });
      for (const l of this.#locals) if (l !== local) this.#formPair(l, remote, now);
    }
    const pair = this.#formPair(local, remote, now);
    if (!pair) return "consumed";

    // RFC 8445 §7.3.1.4: answer with a check of our own on the same pair, ahead of the list.
    if (pair.state === "waiting" || pair.state === "failed") {
      pair.triggered = true;
      if (pair.state === "failed") this.#setPairState(pair, "waiting");
    } else if (pair.state === "in_progress" && pair !== this.#selected) {
      // The peer's check got through, so ours may now too (its NAT just opened): a new transaction
      // at once instead of waiting out the backoff; answers to the old one still count.
      pair.triggered = true;
    }
    // USE-CANDIDATE is the controlling side's word; a controlling agent ignores it from the peer.
    if (msg.useCandidate && !pair.nominated && this.#role === "controlled") {
      pair.nominated = true;
      this.#log?.debug("pair nominated by peer", { cid: this.#cid, pair: formatPair(pair), state: pair.state });
      if (pair.state === "succeeded") this.#considerSelecting(pair, now);
    }
    return "consumed";
  }

  #onResponse(msg: BindingMessage, from: Endpoint, at: Endpoint, now: number, relay: string | undefined): IceInput {
    const key = transactionKey(msg.transactionId);
    const pair = this.#transactions.get(key);
    if (!pair) return this.#drop("unknown_transaction", "not_mine");
    if (!this.#remote || !msg.verify(this.#remote.pwd)) return this.#drop("bad_integrity", "consumed");
    // RFC 8445 §7.2.5.2.1: only a symmetric answer proves the pair.
    const r = pair.remote.candidate;
    if (from.address !== r.address || from.port !== r.port || !arrivedAt(pair.local, at, relay)) return this.#drop("response_from_elsewhere", "consumed");
    // Only the answer to the check that carried USE-CANDIDATE nominates (not one to a check it cancelled).
    const nominationAnswered = pair.check?.key === key && pair.check.nominating && this.#role === "controlling";
    this.#forgetTransactions(pair);
    pair.check = undefined;
    if (msg.class === "error") {
      this.#log?.debug("check answered with an error", { cid: this.#cid, pair: formatPair(pair), code: msg.errorCode });
      if (msg.errorCode === 487 && !this.#fixedRole) {
        // RFC 8445 §7.2.5.1: the peer holds our role and won: take the other one and check again.
        this.drops.role_conflict++;
        this.#switchRole(now, "487 Role Conflict from the peer");
        pair.triggered = true;
        return "consumed";
      }
      if (msg.errorCode === 487) this.drops.role_conflict++;
      this.#pairFailed(pair, now, `error ${msg.errorCode ?? "?"}`);
      return "consumed";
    }
    pair.lastResponseAt = now;
    pair.unansweredSince = undefined;
    if (msg.mapped && !this.#isKnownLocal(msg.mapped)) {
      // Our address as the peer sees it, new to us: a peer-reflexive local candidate (timeline only:
      // checks keep leaving from the base, and Firezone does not signal prflx candidates).
      const learnt = localCandidate("prflx", msg.mapped.address, msg.mapped.port, pair.local.base);
      this.#reflexive.push(learnt);
      this.#emit({ kind: "candidate", side: "local", action: "learned", candidate: { type: "prflx", address: learnt.address, port: learnt.port, priority: learnt.priority } });
    }
    if (pair.state !== "succeeded") {
      this.#setPairState(pair, "succeeded");
      if (pair.nominated) this.#considerSelecting(pair, now);
    }
    if (this.#role === "controlling") {
      if (nominationAnswered && !pair.nominated) {
        pair.nominated = true;
        pair.nominate = false;
        this.#considerSelecting(pair, now);
      } else if (!pair.nominated) this.#nominateBest(now);
    }
    return "consumed";
  }

  #isKnownLocal(e: Endpoint): boolean {
    return this.#locals.some((l) => l.candidate.address === e.address && l.candidate.port === e.port) || this.#reflexive.some((c) => c.address === e.address && c.port === e.port);
  }

  #reply(local: LocalBase, to: Endpoint, data: Uint8Array): void {
    this.#send(local, to, data);
  }

  #send(local: LocalBase, to: Endpoint, data: Uint8Array): void {
    const t: IceTransmit = { from: local.base, to, data };
    if (local.relay !== undefined) t.relay = local.relay;
    this.#transmits.push(t);
  }

  // ---- selection and state -----------------------------------------------------------------

  /** RFC 8445 §8.1.1 (controlled): of the nominated pairs that work, the highest priority carries data. */
  #considerSelecting(pair: Pair, now: number): void {
    const current = this.#selected;
    if (current && current !== pair && current.state === "succeeded" && byPriority(current, pair) < 0) return;
    if (current === pair) return;
    this.#select(pair);
    pair.nextConsentAt = now + this.#consentInterval();
    pair.unansweredSince = undefined;
    this.#disconnectedAt = undefined;
    const view = viewOfPair(pair);
    this.#log?.info("pair nominated", {
      cid: this.#cid,
      local: `${view.local.type} ${view.local.address}:${view.local.port}`,
      remote: `${view.remote.type} ${view.remote.address}:${view.remote.port}`,
      relay: view.local.relay,
    });
    this.#emit({ kind: "nominated", pair: view });
    if (this.#state !== "connected") this.#setState("connected", now);
    this.#lastTrafficAt = Math.max(this.#lastTrafficAt, now);
  }

  /** Controlling: start nominating the pair `nominationChoice` picks (agent-role.ts), if any. */
  #nominateBest(_now: number): void {
    const choice = nominationChoice(this.#pairs);
    if (!choice) return;
    if (choice.replaces) choice.replaces.nominate = false;
    choice.pair.nominate = true;
    choice.pair.triggered = true; // the USE-CANDIDATE check goes out at the next handleTimeout, ahead of others
    this.#log?.debug("nominating", { cid: this.#cid, pair: formatPair(choice.pair) });
  }

  /** The selected pair is gone or dead: fall back to another nominated pair that works, or disconnect. */
  #selectedLost(now: number, reason: string): void {
    this.#select(undefined);
    const next = this.#pairs.filter((p) => p.nominated && p.state === "succeeded").sort(byPriority)[0];
    if (next) {
      this.#considerSelecting(next, now);
      return;
    }
    this.#disconnect(now, reason);
    if (this.#role === "controlling") this.#nominateBest(now);
  }

  #disconnect(now: number, reason: string): void {
    if (this.#state === "disconnected" || this.#state === "failed") return;
    this.#disconnectedAt = now;
    this.#setState("disconnected", now, reason);
  }

  #checkAllFailed(now: number): void {
    if (this.#selected || this.#state === "failed") return;
    if (this.#pairs.length && this.#pairs.every((p) => p.state === "failed")) this.#disconnect(now, "every candidate pair failed");
  }

  #setState(state: ConnectionState, _now: number, reason?: string): void {
    if (this.#state === state) return;
    if (state !== "disconnected") this.#disconnectedAt = undefined;
    this.#state = state;
    const fields = { cid: this.#cid, state, reason };
    if (state === "failed" || state === "disconnected") this.#log?.info("ice connection " + state, fields);
    else this.#log?.debug("ice connection " + state, fields);
    this.#emit(reason === undefined ? { kind: "state", state } : { kind: "state", state, reason });
  }

  #setPairState(pair: Pair, state: PairState): void {
    const from = pair.state;
    if (from === state) return;
    pair.state = state;
    if (this.#log?.enabled("debug")) this.#log.debug("candidate pair " + state, { cid: this.#cid, pair: formatPair(pair), from });
    this.#emit({ kind: "pair_state", pair: viewOfPair(pair), from, to: state });
  }

  /** Every transaction of the pair, the current one and any cancelled by a triggered check. */
  #forgetTransactions(pair: Pair): void {
    for (const [key, p] of this.#transactions) if (p === pair) this.#transactions.delete(key);
  }

  #pairFailed(pair: Pair, now: number, reason: string): void {
    this.#forgetTransactions(pair);
    pair.check = undefined;
    pair.triggered = false;
    this.#setPairState(pair, "failed");
    if (pair === this.#selected) this.#selectedLost(now, `selected pair failed (${reason})`);
    else this.#checkAllFailed(now);
  }

  #consentInterval(): number {
    return this.#state === "idle" ? IDLE_RTO_MS : MAX_RTO_MS;
  }

  /** How long the selected pair may leave checks unanswered: 15.25 s active, 100 s idle. */
  #consentTimeout(): number {
    return this.#state === "idle" ? IDLE_RTO_MS * IDLE_RETRANSMITS : checkTimeout(MAX_RETRANSMITS, MAX_RTO_MS);
  }

  // ---- timers ------------------------------------------------------------------------------

  handleTimeout(now: number): void {
    if (this.#state === "failed") return;

    if (this.#nothingToCheckSince !== undefined && now - this.#nothingToCheckSince >= NO_CANDIDATES_TIMEOUT_MS && !this.#selected) {
      this.#fail(now, `no candidates to check for ${NO_CANDIDATES_TIMEOUT_MS / 1000} s`);
      return;
    }
    if (this.#state === "disconnected" && this.#disconnectedAt !== undefined && now - this.#disconnectedAt >= DISCONNECT_GRACE_MS) {
      this.#fail(now, "disconnected for longer than the grace period");
      return;
    }
    if (this.#state === "connected" && now - this.#lastTrafficAt >= IDLE_AFTER_MS) {
      this.#setState("idle", now, `no traffic for ${IDLE_AFTER_MS / 1000} s`);
    }

    // Checks in flight: retransmit or give up.
    for (const pair of [...this.#pairs]) {
      const c = pair.check;
      if (!c || now < c.nextAt) continue;
      if (c.transmissions >= MAX_RETRANSMITS) {
        this.#pairFailed(pair, now, `no answer to ${c.transmissions} checks`);
        continue;
      }
      this.#transmitCheck(pair, c, now);
    }

    // Consent on the selected pair: a fresh request every max RTO, dead after the ICE timeout.
    const sel = this.#selected;
    if (sel && sel.nextConsentAt !== undefined) {
      const idle = this.#state === "idle";
      if (sel.unansweredSince !== undefined && now - sel.unansweredSince >= this.#consentTimeout()) {
        this.#log?.info("selected pair stopped answering", { cid: this.#cid, pair: formatPair(sel), idle });
        this.#pairFailed(sel, now, idle ? "no answer for 100 s while idle" : "no answer within the ICE timeout");
      } else if (now >= sel.nextConsentAt && this.#remote) {
        this.#startCheck(sel, now, true);
        sel.unansweredSince ??= now;
        sel.nextConsentAt = now + this.#consentInterval();
      }
    }

    // Start checks: triggered first, then waiting pairs by priority. One component, a handful of
    // pairs: no pacing beyond what one handleTimeout round sends.
    if (this.#remote) {
      for (const pair of this.#pairs) if (pair.triggered) this.#startCheck(pair, now, false);
      for (const pair of this.#pairs) if (pair.state === "waiting" && !pair.check) this.#startCheck(pair, now, false);
    }
  }

  #fail(now: number, reason: string): void {
    this.#transactions.clear();
    for (const p of this.#pairs) p.check = undefined;
    this.#select(undefined);
    this.#setState("failed", now, reason);
  }

  #startCheck(pair: Pair, now: number, consent: boolean): void {
    // A consent check still in flight counts; do not stack another. A triggered check cancels the
    // one in flight (RFC 8445 §7.3.1.4): no more retransmits, but its answer is still accepted.
    if (pair.check && consent) return;
    const transactionId = new Uint8Array(12);
    this.#random(transactionId);
    const key = transactionKey(transactionId);
    pair.check = { transactionId, key, firstSentAt: now, transmissions: 0, nextAt: now, nominating: this.#role === "controlling" && (pair.nominated || pair.nominate === true) };
    pair.triggered = false;
    this.#transactions.set(key, pair);
    if (pair.state === "waiting" || pair.state === "failed") this.#setPairState(pair, "in_progress");
    this.#transmitCheck(pair, pair.check, now);
  }

  #transmitCheck(pair: Pair, c: Check, now: number): void {
    const remote = this.#remote;
    if (!remote) return;
    c.transmissions++;
    const idle = this.#state === "idle" && pair === this.#selected;
    c.nextAt = now + (idle ? IDLE_RTO_MS : retransmitDelay(c.transmissions, MAX_RTO_MS));
    if (idle && c.transmissions >= IDLE_RETRANSMITS) c.nextAt = Infinity; // consent timeout decides
    const data = encodeBindingRequest({
      transactionId: c.transactionId,
      username: `${remote.ufrag}:${this.local.ufrag}`,
      password: remote.pwd,
      // RFC 8445 §7.1.1: the priority a peer-reflexive candidate of ours would have.
      priority: candidatePriority("prflx", (pair.local.candidate.priority >>> 8) & 0xffff),
      ...(this.#role === "controlling" ? { iceControlling: this.#tieBreaker, useCandidate: c.nominating } : { iceControlled: this.#tieBreaker }),
    });
    if (this.#log?.enabled("trace")) this.#log.trace("check sent", { cid: this.#cid, pair: formatPair(pair), n: c.transmissions });
    this.#send(pair.local, remoteEndpoint(pair), data);
  }

  pollTimeout(): number | undefined {
    if (this.#state === "failed") return undefined;
    let t = Infinity;
    if (this.#nothingToCheckSince !== undefined && !this.#selected) t = Math.min(t, this.#nothingToCheckSince + NO_CANDIDATES_TIMEOUT_MS);
    if (this.#state === "disconnected" && this.#disconnectedAt !== undefined) t = Math.min(t, this.#disconnectedAt + DISCONNECT_GRACE_MS);
    if (this.#state === "connected") t = Math.min(t, this.#lastTrafficAt + IDLE_AFTER_MS);
    for (const p of this.#pairs) {
      if (p.check) t = Math.min(t, p.check.nextAt);
      if (this.#remote && ((p.state === "waiting" && !p.check) || p.triggered)) t = -Infinity;
    }
    const sel = this.#selected;
    if (sel && sel.nextConsentAt !== undefined && this.#remote) {
      t = Math.min(t, sel.nextConsentAt);
      if (sel.unansweredSince !== undefined) t = Math.min(t, sel.unansweredSince + this.#consentTimeout());
    }
    if (t === -Infinity) return 0;
    return Number.isFinite(t) ? t : undefined;
  }

  pollTransmit(): IceTransmit | undefined {
    return this.#transmits.shift();
  }

  pollEvent(): IceEvent | undefined {
    return this.#events.shift();
  }

  #emit(e: IceEvent): void {
    this.#events.push(e);
  }

  /** For logs and the admin: the candidate lines we would signal. */
  signalledCandidates(): string[] {
    return this.localCandidates().filter((c) => c.type !== "prflx").map(formatCandidate);
  }
}


/**
 * Could a datagram received at `at` (via `relay`) have reached `local`? The gateway's sockets are
 * bound to the wildcard address, so the shell knows the socket (port, family), not which of the
 * host's addresses a datagram hit: a host candidate matches on port and family.
 */
function arrivedAt(local: LocalBase, at: Endpoint, relay: string | undefined): boolean {
  if (relay !== undefined || local.relay !== undefined) return local.relay === relay;
  return local.base.port === at.port && (sameFamily(local.base.address, at.address) || at.address === "::");
}

/**
 * Which agent a Binding message is for, without knowing the agents: a request names the receiving
 * agent's ufrag (USERNAME "ours:theirs"), a response only its transaction (`ownsTransaction`).
 */
export function bindingRoute(msg: BindingMessage): { ufrag: string } | { transaction: string } | undefined {
  if (msg.class === "request") {
    const colon = msg.username?.indexOf(":") ?? -1;
    return colon > 0 ? { ufrag: msg.username!.slice(0, colon) } : undefined;
  }
  return { transaction: transactionKey(msg.transactionId) };
}
