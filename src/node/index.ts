// The gateway's sans-IO core and the batches its IO shells hand to the kernel.
export { DatagramBatch, TUN_HEADROOM, TunBatch } from "./batches.ts";
export {
  GatewayNode,
  NET_DELIVERED,
  NET_DENIED,
  NET_NONE,
  TUN_DROPPED,
  TUN_SENT,
  TUN_STAGED,
  isGatewayEvent,
  isIceEvent,
  type ClientSpec,
  type IceNodeEvent,
  type CaptureTap,
  type GatewayNodeOptions,
  type NodeCounters,
  type NodeEvent,
} from "./gateway-node.ts";
export { IceConnections, ROLLOVER_DEBOUNCE_MS, type IceConnection } from "./ice-connections.ts";
export { Relays, type RelaySpec, type RelayView } from "./relays.ts";
export { logIceEvent } from "./ice-log.ts";
