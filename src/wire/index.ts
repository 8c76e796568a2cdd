// WireGuard, sans-IO: the public face of src/wire.
export * from "./constants.ts";
export { CookieChecker, CookieJar, HandshakeLoad, formatEndpoint, sameEndpoint, screenHandshake, type Endpoint, type ScreenResult } from "./cookie.ts";
export { DROP_REASONS, DropCounters, type DropReason } from "./drops.ts";
export { consumeInitiation, wipeConsumedInitiation, type ConsumedInitiation } from "./handshake.ts";
export { LocalIdentity } from "./identity.ts";
export { Initiation, messageType, readU32 } from "./messages.ts";
export { DECAP_NONE, WirePeer, type PeerStats, type ReachOutResult, type Transmit, type WireEvent, type WirePeerOptions } from "./peer.ts";
export { HandshakeRateLimiter, sourceKey } from "./ratelimiter.ts";
export { ReplayWindow } from "./replay-window.ts";
export {
  ConnectionIdAllocator,
  connectionIdOf,
  formatIndex,
  makeIndex,
  sessionField,
  slotOf,
  type SessionIndex,
} from "./session-index.ts";
