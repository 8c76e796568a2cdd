// The connection manager: many peers behind one key and port, demuxed by session index.
export { AllowedIps } from "./allowed-ips.ts";
export { MinHeap } from "./min-heap.ts";
export { PeerSpecError, Tunnel, type Connection, type ConnectionEvent, type HandshakeDropSample, type PacketOwner, type TunnelWork, type RejectedSources, type PeerSpec, type TunnelDropReason, type TunnelEvent, type TunnelOptions } from "./tunnel.ts";
export { GOODBYE_EVENT, controlEventOf, goodbyePacket } from "./goodbye.ts";
