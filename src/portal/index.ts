// The portal connection: a sans-IO Phoenix channel client (channel.ts) with Firezone's message
// schemas for the `gateway` topic (messages.ts) and the small `client` subset (client-messages.ts).
import { PhoenixChannel, type ChannelOptions } from "./channel.ts";
import { CLIENT_CODEC, type ClientEgress, type ClientIngress } from "./client-messages.ts";
import { GATEWAY_CODEC, type GatewayEgress, type GatewayIngress } from "./messages.ts";

export { PhoenixChannel, type ChannelEvent, type ChannelOptions, type ChannelState, type ChannelStats, type ChannelTimers, type FatalReason, type SocketEnd } from "./channel.ts";
export { ReconnectBackoff } from "./backoff.ts";
export * from "./constants.ts";
export { decodeFrame, encodeFrame, type Frame, type InboundRef } from "./frame.ts";
export { externalId, loginUrl, redactedUrl, type LoginParams } from "./login-url.ts";
export { userAgent, type SystemFacts } from "./user-agent.ts";
export { GATEWAY_CODEC, GATEWAY_EGRESS, GATEWAY_INGRESS, type Codec, type GatewayEgress, type GatewayIngress } from "./messages.ts";
export { CLIENT_CODEC, CLIENT_EGRESS, CLIENT_INGRESS, type ClientEgress, type ClientIngress } from "./client-messages.ts";

export type GatewayChannel = PhoenixChannel<GatewayIngress, GatewayEgress>;
export type ClientChannel = PhoenixChannel<ClientIngress, ClientEgress>;

/** The gateway's side: topic `gateway`, join payload `null`. */
export function gatewayChannel(options: ChannelOptions): GatewayChannel {
  return new PhoenixChannel(GATEWAY_CODEC, options);
}

/** A client's side (the headless client): topic `client`. */
export function clientChannel(options: ChannelOptions): ClientChannel {
  return new PhoenixChannel(CLIENT_CODEC, options);
}
export { DEFAULT_API_URL, portalSettings, type PortalSettings } from "./settings.ts";
