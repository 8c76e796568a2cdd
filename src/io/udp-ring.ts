// A single-producer/single-consumer ring of received datagrams in a SharedArrayBuffer: the receive
// worker's recvmmsg writes straight into it, the main thread reads. Same protocol as the TUN's
// PacketRing (tun-ring.ts: Atomics counters, a wake-up message only to a consumer that said it
// sleeps), plus per-slot metadata the kernel fills in place: the source sockaddr and the control
// messages (UDP_GRO's segment size), so nothing is copied between the kernel and the consumer.
import { wakeProducer } from "./tun-ring.ts";

export const UCTL_WRITE = 0;
export const UCTL_READ = 1;
export const UCTL_SLEEPING = 2;
export const UCTL_STOP = 3;
/** Datagrams cut because they did not fit a slot (MSG_TRUNC); not delivered. */
export const UCTL_TRUNCATED = 4;
/** recvmmsg failures other than EAGAIN/EINTR. */
export const UCTL_ERRORS = 5;
/** The worker sets it once its loop runs (tests wait for it). */
export const UCTL_RUNNING = 6;
/** recvmmsg calls that returned datagrams (received / this = datagrams per call). */
export const UCTL_RECV_CALLS = 7;
/** The worker waits on a full ring (tun-ring.ts waitForRoom): only then does release() notify. */
export const UCTL_PRODUCER_WAITING = 8;
/** 64 bytes: slot metadata and data stay cache-line aligned. */
const CTL_WORDS = 16;

/**
 * Per-slot metadata, in bytes: 0 length (i32; the worker writes it), 4 GRO segment size (i32, 0 when
 * none), 8 sockaddr (SOCKADDR_ROOM = 32, as recvmmsg wrote it), 40 control messages (112: UDP_GRO
 * 24 + IPV6_PKTINFO 40 + SCM_TIMESTAMPNS 32, with room to spare).
 */
export const META_SIZE = 192;
export const META_LEN = 0;
export const META_SEGMENT = 4;
export const META_NAME = 8;
export const META_CONTROL = 40;
export const META_CONTROL_ROOM = 112;
/**
 * The local address the datagram arrived on (IP_PKTINFO / IPV6_PKTINFO, wildcard sockets only), as
 * the worker parsed it from the control messages: 152 family (i32: 0 none, AF_INET, AF_INET6),
 * 156 ifindex (i32), 160 the address (4 or 16 bytes, network order).
 */
export const META_LOCAL = 152;
/**
 * 176: when the kernel received the datagram (SO_TIMESTAMPNS, CLOCK_REALTIME) as f64 milliseconds
 * since the epoch, 0 when the socket gives no timestamps. The consumer's queue discipline (codel.ts)
 * reads how long each datagram waited in the socket buffer and the ring from it.
 */
export const META_RX_MS = 176;

export interface DatagramRingLayout {
  slots: number;
  /** Bytes per slot: the largest datagram (with GRO: a whole coalesced 64 KiB one). */
  slotSize: number;
}

export class DatagramRing {
  readonly ctl: Int32Array;
  readonly meta: Uint8Array;
  readonly meta32: Int32Array;
  readonly meta64: Float64Array;
  readonly data: Uint8Array;

  constructor(readonly sab: SharedArrayBuffer, readonly layout: DatagramRingLayout) {
    this.ctl = new Int32Array(sab, 0, CTL_WORDS);
    this.meta = new Uint8Array(sab, CTL_WORDS * 4, layout.slots * META_SIZE);
    this.meta32 = new Int32Array(sab, CTL_WORDS * 4, (layout.slots * META_SIZE) / 4);
    this.meta64 = new Float64Array(sab, CTL_WORDS * 4, (layout.slots * META_SIZE) / 8);
    this.data = new Uint8Array(sab, CTL_WORDS * 4 + layout.slots * META_SIZE, layout.slots * layout.slotSize);
  }

  static create(layout: DatagramRingLayout): DatagramRing {
    return new DatagramRing(new SharedArrayBuffer(CTL_WORDS * 4 + layout.slots * (META_SIZE + layout.slotSize)), layout);
  }

  get pending(): number {
    return (Atomics.load(this.ctl, UCTL_WRITE) - Atomics.load(this.ctl, UCTL_READ)) | 0;
  }

  /** Consumer: publishes that slots up to sequence `r` (exclusive) are free, waking a producer waiting on a full ring. */
  release(r: number): void {
    Atomics.store(this.ctl, UCTL_READ, r);
    wakeProducer(this.ctl, UCTL_READ, UCTL_PRODUCER_WAITING);
  }

  /**
   * Consumer: announces it will wait for a wake-up message. Returns false (and stays awake) if
   * datagrams arrived meanwhile — the producer checks the flag after publishing, so one side
   * always sees the other.
   */
  sleep(): boolean {
    Atomics.store(this.ctl, UCTL_SLEEPING, 1);
    if (this.pending !== 0) {
      Atomics.store(this.ctl, UCTL_SLEEPING, 0);
      return false;
    }
    return true;
  }
}
