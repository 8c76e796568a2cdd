// The data plane's two devices, opened the fastest way the host allows and said once how: the TUN
// with offloads (IFF_VNET_HDR + TSO, io/tun.ts) and the batched UDP socket (recvmmsg/sendmmsg, GSO/GRO,
// io/udp-socket.ts). Each falls back at start when refused — the TUN to plain packets, the socket to
// node:dgram when bun:ffi cannot open it — and the fallback is chosen here, not per packet.
// Standalone and portal mode both open their devices through this file.
import { TunDevice } from "../io/tun.ts";
import { GatewayUdp } from "../io/udp-socket.ts";
import { UdpSockets } from "../io/udp.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import type { Endpoint } from "../wire/index.ts";

export interface DataPlaneChoices {
  /** GLASSGATE_OFFLOAD (default on): ask the TUN for TCP/UDP super-packets. */
  offload: boolean;
  /** GLASSGATE_UDP_GSO (default on): UDP GSO for sends, GRO for receives, where the kernel has them. */
  udpGso: boolean;
  /** GLASSGATE_AQM (default on): CoDel on the receive queue, where the kernel gives receive timestamps. */
  aqm?: boolean;
  /** False in portal mode (run.ts): the sticky source stays off, and the data plane line says why. */
  stickySource?: boolean;
}

export function openTun(name: string, choices: DataPlaneChoices): TunDevice {
  return TunDevice.open(name, { offload: choices.offload });
}

export interface UdpOpenOptions {
  port: number;
  keepDefaultBuffers: boolean;
  udpGso: boolean;
  /** CoDel on the receive queue (GatewayUdp's aqm). */
  aqm: boolean;
  /** Answer each peer from the address its datagrams arrive on (GatewayUdp's sticky source). */
  stickySource: boolean;
  /** Batched socket: datagrams wait in its ring; the event loop drains them (wake it). */
  onReadable: () => void;
  /** node:dgram fallback: one callback per datagram, and its socket errors. */
  onDatagram: (data: Uint8Array, from: Endpoint) => void;
  onError: (err: Error) => void;
  log: TargetLogger;
}

/** The batched socket; node:dgram with a warning when it cannot open (no bun:ffi, an old kernel). */
export async function openUdp(o: UdpOpenOptions): Promise<GatewayUdp | UdpSockets> {
  try {
    return await GatewayUdp.open({
      port: o.port,
      keepDefaultBuffers: o.keepDefaultBuffers,
      gso: o.udpGso,
      gro: o.udpGso,
      stickySource: o.stickySource,
      aqm: o.aqm,
      // The loop drains with its own handler; this one is never called while it is attached.
      onDatagram: () => undefined,
      onReadable: o.onReadable,
      log: o.log,
    });
  } catch (err) {
    // A port already taken fails the same way on either path: say so as it is.
    if (/binding UDP/.test(String((err as Error).message))) throw err;
    o.log.warn("batched UDP socket unavailable: falling back to one datagram per call (node:dgram)", { err });
    return UdpSockets.open({ port: o.port, onDatagram: o.onDatagram, onError: o.onError, keepDefaultBuffers: o.keepDefaultBuffers });
  }
}

/** The one line that says which data path this start got (and why, when something was refused). */
export function dataPlaneFields(tun: TunDevice, udp: GatewayUdp | UdpSockets, choices: DataPlaneChoices): Record<string, string | number | boolean> {
  const tunOffload = tun.offload !== "off" ? tun.offload : !choices.offload ? "off (GLASSGATE_OFFLOAD=0)" : `off (refused: ${tun.offloadRefused ?? "unknown"})`;
  if (udp instanceof GatewayUdp) {
    return {
      tun_offload: tunOffload,
      udp: "recvmmsg/sendmmsg",
      udp_gso: udp.gso ? "on" : choices.udpGso ? "off (kernel)" : "off (GLASSGATE_UDP_GSO=0)",
      udp_gro: udp.gro ? "on" : choices.udpGso ? "off (kernel)" : "off (GLASSGATE_UDP_GSO=0)",
      udp_recv_batch: udp.recvBatch,
      // How long a datagram may wait before the receive queue sheds load (io/codel.ts).
      udp_aqm: udp.aqm ? "codel (target 5 ms, interval 100 ms)" : choices.aqm === false ? "off (GLASSGATE_AQM=0)" : "off (kernel: no receive timestamps)",
      // Replies from the address each peer's datagrams arrive on (IP_PKTINFO); off: the route picks.
      udp_sticky_source: udp.sticky ? "on" : choices.stickySource === false ? "off (portal mode: ICE picks its own addresses)" : "off",
    };
  }
  return { tun_offload: tunOffload, udp: "node:dgram (fallback)", udp_gso: "off", udp_gro: "off", udp_recv_batch: 1, udp_aqm: "off", udp_sticky_source: "off" };
}
