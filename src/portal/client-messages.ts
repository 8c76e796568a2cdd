// The `client` topic, kept to what a headless client needs to reach one resource through one
// gateway (the dev portal speaks it; tools/headless-client will). Firezone's definitions:
// `connlib/tunnel/src/messages/client.rs` at 8378819621c7. Left out on purpose: config_changed,
// resource_created_or_updated, sites' properties, violated_properties of a failed flow.
//
//   client → portal  create_flow {resource_id, connected_gateway_ids}
//   portal → gateway authorize_flow …            gateway → portal flow_authorized {ref}
//   portal → client  flow_created {gateway keys, addresses, preshared key, both ICE credentials}
//                    or flow_creation_failed {resource_id, reason}
//   both ways        (broadcast_)ice_candidates, (broadcast_)invalidated_ice_candidates, relayed by the portal
import { z } from "zod";
import { Candidate, IceCredentials, Interface, Ipv4, Ipv6, Key, PortalId, Relay, RelaysPresence } from "./schemas.ts";
import type { Codec } from "./messages.ts";

/** A resource as a client sees it: what to route, and which sites (gateway groups) serve it. */
export const ClientResource = z.object({
  type: z.enum(["cidr", "dns", "internet"]),
  id: PortalId,
  name: z.string(),
  address: z.string().optional(),
  address_description: z.string().nullish(),
  gateway_groups: z.array(z.object({ id: PortalId, name: z.string() })).default([]),
});

export const FlowCreated = z.object({
  resource_id: PortalId,
  gateway_id: PortalId,
  gateway_group_id: PortalId,
  gateway_public_key: Key,
  gateway_ipv4: Ipv4,
  gateway_ipv6: Ipv6,
  preshared_key: Key,
  client_ice_credentials: IceCredentials,
  gateway_ice_credentials: IceCredentials,
});

export const GatewayIceCandidates = z.object({ gateway_id: PortalId, candidates: z.array(Candidate) });

export const CLIENT_INGRESS = {
  init: z.object({ interface: Interface, resources: z.array(ClientResource).default([]), relays: z.array(Relay).default([]) }),
  flow_created: FlowCreated,
  /** reason: not_found | offline | forbidden, anything newer reads as unknown (serde `other`). */
  flow_creation_failed: z.object({ resource_id: PortalId, reason: z.string().transform((r) => (["not_found", "offline", "forbidden"].includes(r) ? r : "unknown")) }),
  ice_candidates: GatewayIceCandidates,
  invalidate_ice_candidates: GatewayIceCandidates,
  relays_presence: RelaysPresence,
  resource_deleted: PortalId,
} as const;
export type ClientIngress = { [E in keyof typeof CLIENT_INGRESS]: { event: E; payload: z.output<(typeof CLIENT_INGRESS)[E]> } }[keyof typeof CLIENT_INGRESS];

export const GatewaysIceCandidates = z.object({ gateway_ids: z.array(PortalId), candidates: z.array(Candidate) });

export const CLIENT_EGRESS = {
  create_flow: z.object({ resource_id: PortalId, connected_gateway_ids: z.array(PortalId).default([]) }),
  broadcast_ice_candidates: GatewaysIceCandidates,
  broadcast_invalidated_ice_candidates: GatewaysIceCandidates,
} as const;
export type ClientEgress = { [E in keyof typeof CLIENT_EGRESS]: { event: E; payload: z.input<(typeof CLIENT_EGRESS)[E]> } }[keyof typeof CLIENT_EGRESS];

export const CLIENT_CODEC: Codec<ClientIngress, ClientEgress> = { topic: "client", ingress: CLIENT_INGRESS, egress: CLIENT_EGRESS };
