// Candidate pairs of one ICE agent: what is paired with what, in which order it is checked, and the
// view of a pair that events and the connection timeline carry.
import type { Endpoint } from "../wire/cookie.ts";
import type { Candidate, CandidateType } from "./candidate.ts";

/** RFC 8445 §6.1.2.6, without Frozen: one component and one stream, so nothing waits on a foundation. */
export type PairState = "waiting" | "in_progress" | "succeeded" | "failed";

/** A candidate we can send from: a host socket address, or a relayed address on a TURN allocation. */
export interface LocalBase {
  candidate: Candidate;
  /** Where our datagrams leave from: the host address itself, or the relayed address. */
  base: Endpoint;
  /** The TURN allocation that relays for this candidate (the node routes such transmits through it). */
  relay?: string;
}

export interface RemoteCandidate {
  candidate: Candidate;
  /** Guessed by us (remote srflx IP × remote host port), not signalled by the peer. */
  optimistic?: boolean;
}

/** One check in flight: a STUN transaction, retransmitted until answered or given up. */
export interface Check {
  transactionId: Uint8Array;
  key: string;
  firstSentAt: number;
  transmissions: number;
  nextAt: number;
  nominating: boolean;
}

export interface Pair {
  id: number;
  local: LocalBase;
  remote: RemoteCandidate;
  priority: bigint;
  state: PairState;
  /** The controlling side sent USE-CANDIDATE on this pair (and, when we control, it was answered). */
  nominated: boolean;
  /** Controlling: our checks on this pair carry USE-CANDIDATE until one is answered (regular nomination). */
  nominate?: boolean;
  check?: Check;
  /** A check was triggered by a request on this pair (RFC 8445 §7.3.1.4): send it before others. */
  triggered: boolean;
  lastResponseAt?: number;
  /** Selected pair only: the first consent check still unanswered, what its timeout counts from. */
  unansweredSince?: number;
  /** Selected pair only: when the next consent check goes out. */
  nextConsentAt?: number;
}

/** What events carry about a candidate: enough for a timeline line. */
export interface CandidateView {
  type: CandidateType;
  address: string;
  port: number;
  priority: number;
  relay?: string;
  optimistic?: boolean;
}

export interface PairView {
  id: number;
  state: PairState;
  nominated: boolean;
  /** The pair priority as a decimal string: it needs 64 bits (RFC 8445 §6.1.2.3). */
  priority: string;
  local: CandidateView;
  remote: CandidateView;
}

/**
 * RFC 8445 §6.1.2.3 with G the controlling (remote) and D the controlled (our) priority:
 * 2^32·min(G, D) + 2·max(G, D) + (G > D ? 1 : 0).
 */
export function pairPriority(controlling: number, controlled: number): bigint {
  const g = BigInt(controlling);
  const d = BigInt(controlled);
  const min = g < d ? g : d;
  const max = g < d ? d : g;
  return (min << 32n) + 2n * max + (g > d ? 1n : 0n);
}

export function viewOfLocal(l: LocalBase): CandidateView {
  const v: CandidateView = { type: l.candidate.type, address: l.candidate.address, port: l.candidate.port, priority: l.candidate.priority };
  if (l.relay !== undefined) v.relay = l.relay;
  return v;
}

export function viewOfRemote(r: RemoteCandidate): CandidateView {
  const v: CandidateView = { type: r.candidate.type, address: r.candidate.address, port: r.candidate.port, priority: r.candidate.priority };
  if (r.optimistic) v.optimistic = true;
  return v;
}

export function viewOfPair(p: Pair): PairView {
  return { id: p.id, state: p.state, nominated: p.nominated, priority: p.priority.toString(), local: viewOfLocal(p.local), remote: viewOfRemote(p.remote) };
}

export function remoteEndpoint(p: Pair): Endpoint {
  return { address: p.remote.candidate.address, port: p.remote.candidate.port };
}

/** Highest priority first: the order checks start in and the order nominated pairs are preferred. */
export function byPriority(a: Pair, b: Pair): number {
  return a.priority > b.priority ? -1 : a.priority < b.priority ? 1 : a.id - b.id;
}

export function sameFamily(a: string, b: string): boolean {
  return a.includes(":") === b.includes(":");
}

export function formatPair(p: Pair): string {
  const l = p.local.candidate;
  const r = p.remote.candidate;
  return `${l.type} ${l.address}:${l.port} -> ${r.type} ${r.address}:${r.port}`;
}
