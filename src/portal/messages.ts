// Every message of the `gateway` topic, both ways, validated with zod. Firezone's definitions:
// `connlib/tunnel/src/messages/gateway.rs` (IngressMessages / EgressMessages) at 8378819621c7.
// Payloads keep Firezone's snake_case field names, so a log line or a test can quote the wire.
import { z } from "zod";
import { Candidate, IceCredentials, Interface, Ipv4, Ipv6, Key, PortalId, PortalResource, Relay, RelaysPresence, UnixSeconds } from "./schemas.ts";

export const Authorization = z.object({ client_id: PortalId, resource_id: PortalId, expires_at: UnixSeconds });

/** `init`: after every join. The gateway takes its TUN addresses from `interface` and drops
 * authorizations it holds that are not listed here. */
export const Init = z.object({
  interface: Interface,
  config: z.object({ ipv4_masquerade_enabled: z.boolean(), ipv6_masquerade_enabled: z.boolean() }),
  relays: z.array(Relay).default([]),
  account_slug: z.string().nullish(),
  authorizations: z.array(Authorization).default([]),
});

/** `authorize_flow`: a client may reach a resource; answered with `flow_authorized {ref}`. */
export const AuthorizeFlow = z.object({
  ref: z.string().min(1),
  resource: PortalResource,
  gateway_ice_credentials: IceCredentials,
  client: z.object({ id: PortalId, public_key: Key, preshared_key: Key, ipv4: Ipv4, ipv6: Ipv6 }),
  client_ice_credentials: IceCredentials,
  expires_at: UnixSeconds.nullish(),
});

const ResolveRequest = z.object({ name: z.string().min(1), proxy_ips: z.array(z.union([Ipv4, Ipv6])) });

/** Deprecated `request_connection` (older portals): answered with `connection_ready`. */
export const RequestConnection = z.object({
  ref: z.string().min(1),
  resource: PortalResource,
  client: z.object({
    id: PortalId,
    payload: z.object({ ice_parameters: IceCredentials, domain: ResolveRequest.nullish() }),
    peer: z.object({ persistent_keepalive: z.number().int().nonnegative().nullish(), public_key: Key, preshared_key: Key, ipv4: Ipv4, ipv6: Ipv6 }),
  }),
  expires_at: UnixSeconds.nullish(),
});

/** Deprecated `allow_access` (older portals): adds a resource to an existing connection. */
export const AllowAccess = z.object({
  ref: z.string().min(1),
  client_id: PortalId,
  resource: PortalResource,
  expires_at: UnixSeconds.nullish(),
  payload: ResolveRequest.nullish(),
  client_ipv4: Ipv4,
  client_ipv6: Ipv6,
});

export const RejectAccess = z.object({ client_id: PortalId, resource_id: PortalId });
export const ClientIceCandidates = z.object({ client_id: PortalId, candidates: z.array(Candidate) });
export const AccessAuthorizationExpiryUpdated = z.object({ client_id: PortalId, resource_id: PortalId, expires_at: UnixSeconds });

/** Each inbound event with its payload schema. */
export const GATEWAY_INGRESS = {
  init: Init,
  authorize_flow: AuthorizeFlow,
  reject_access: RejectAccess,
  ice_candidates: ClientIceCandidates,
  invalidate_ice_candidates: ClientIceCandidates,
  relays_presence: RelaysPresence,
  resource_updated: PortalResource,
  access_authorization_expiry_updated: AccessAuthorizationExpiryUpdated,
  request_connection: RequestConnection,
  allow_access: AllowAccess,
} as const;

type Ingress<M extends Record<string, z.ZodType>> = { [E in keyof M & string]: { event: E; payload: z.output<M[E]> } }[keyof M & string];
export type GatewayIngress = Ingress<typeof GATEWAY_INGRESS>;

export const ClientsIceCandidates = z.object({ client_ids: z.array(PortalId), candidates: z.array(Candidate) });

/** Each outbound event with its payload schema: the gateway checks what it sends, too, so a bug
 * shows up here and not as a portal silently ignoring us. */
export const GATEWAY_EGRESS = {
  flow_authorized: z.object({ ref: z.string().min(1) }),
  broadcast_ice_candidates: ClientsIceCandidates,
  broadcast_invalidated_ice_candidates: ClientsIceCandidates,
  /** Deprecated reply to `request_connection` (serde's externally tagged GatewayResponse). */
  connection_ready: z.object({
    ref: z.string().min(1),
    gateway_payload: z.object({ ConnectionAccepted: z.object({ ice_parameters: IceCredentials }) }),
  }),
} as const;
export type GatewayEgress = { [E in keyof typeof GATEWAY_EGRESS]: { event: E; payload: z.input<(typeof GATEWAY_EGRESS)[E]> } }[keyof typeof GATEWAY_EGRESS];

export type Codec<In, Out> = {
  topic: string;
  ingress: Record<string, z.ZodType>;
  egress: Record<string, z.ZodType>;
  /** Phantom: ties the message types to the schemas. */
  readonly _types?: { in: In; out: Out };
};

export const GATEWAY_CODEC: Codec<GatewayIngress, GatewayEgress> = { topic: "gateway", ingress: GATEWAY_INGRESS, egress: GATEWAY_EGRESS };
