// What a TURN allocation tells its owner: events, failure reasons (a metric label each), drop
// reasons, and the options it is made with. Kept apart from the state machine so the node and
// the admin can name them without reading how an allocation works.

import type { StunDropReason } from "./drops.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import type { Endpoint } from "../wire/index.ts";

export type AllocationFailure =
  | "no_response" // no relay address answered a binding request within 8 s: UDP to it blocked?
  | "timeout" // the relay answered once, then stopped (allocate, refresh or keepalive unanswered for 8 s)
  | "auth" // credentials refused (401 on a request that carried a nonce, or 441)
  | "realm_mismatch" // the relay's realm is not the one we were told to use
  | "protocol" // the relay does not speak our dialect (420, a success without the attributes it must carry)
  | "unsupported_transport" // 442: no UDP relaying
  | "quota" // 486: too many allocations for these credentials
  | "insufficient_capacity" // 508: the relay is full
  | "rejected"; // any other error answer

export const ALLOCATION_FAILURES: readonly AllocationFailure[] = [
  "no_response", "timeout", "auth", "realm_mismatch", "protocol", "unsupported_transport", "quota", "insufficient_capacity", "rejected",
];

export type TurnDropReason =
  | StunDropReason
  | "unknown_transaction" // a response to nothing we asked (late, duplicated or forged)
  | "integrity" // a success whose MESSAGE-INTEGRITY does not check with our key
  | "unexpected_message" // a request, or an indication other than Data, from the relay
  | "unknown_channel" // ChannelData on a number we never bound
  | "channel_not_bound" // ChannelData on a channel the relay has not confirmed (or that lapsed)
  | "no_channel"; // wanted to send to a peer without a usable channel (a binding was started)

export type TurnEvent =
  /** The local address the relay traffic leaves from, when the shell says (a host candidate). */
  | { type: "host_candidate"; address: Endpoint }
  /** XOR-MAPPED-ADDRESS of a binding or allocate answer: how the relay sees us. New or changed. */
  | { type: "srflx_candidate"; address: Endpoint }
  | { type: "allocated"; relays: Endpoint[]; srflx: Endpoint | undefined; lifetimeS: number }
  /** The relayed addresses are gone (expired, refused refresh, relay silent, freed). */
  | { type: "candidates_invalidated"; relays: Endpoint[]; reason: string }
  | { type: "failed"; reason: AllocationFailure; detail: string }
  | { type: "channel_bound"; peer: Endpoint; channel: number }
  | { type: "channel_failed"; peer: Endpoint; channel: number; detail: string }
  | { type: "permission_failed"; address: string; detail: string }
  /** A Data indication (a peer we have a permission but no channel for). Rare, so allocated. */
  | { type: "data"; peer: Endpoint; data: Uint8Array }
  | { type: "freed" };

export type AllocationState = "binding" | "allocating" | "allocated" | "failed" | "freeing" | "freed";

export interface TurnClientOptions {
  /** The relay's addresses (one per family; Firezone hands out both). */
  servers: Endpoint[];
  username: string;
  password: string;
  /** When known in advance (Firezone: "firezone"), a relay answering with another realm is refused. */
  realm?: string;
  software?: string;
  /** Fills transaction ids; tests pass a seeded one. */
  random?: (buf: Uint8Array) => void;
  log?: TargetLogger;
}
