// Sticky source: the local address a datagram arrived on, read from its IP_PKTINFO / IPV6_PKTINFO
// control message, and the same cmsg written for a send so the reply leaves from that address
// instead of the one the kernel's route prefers. A WireGuard peer roams to wherever authenticated
// replies come from; on a host with a floating (keepalived) address or several addresses, replies
// from the route's source would pull clients away from the address they dialled (kernel WireGuard
// and wireguard-go answer from the arrival address for the same reason).
//
// A local address travels as LOCAL_WORDS i32 words: family (0 none, AF_INET, AF_INET6), ifindex,
// then the address as four words in memory order (IPv4: one word, the rest 0). The words are copied
// as they are between the kernel's structs, the ring and the endpoint cache: nothing is decoded.
import { AF_INET, AF_INET6, CMSG_HDR, CMSG_LEN_PKTINFO4, CMSG_LEN_PKTINFO6, CMSG_SPACE_PKTINFO4, CMSG_SPACE_PKTINFO6, IP_PKTINFO, IPV6_PKTINFO, SOL_IP, SOL_IPV6 } from "./udp-sys.ts";

export const LOCAL_WORDS = 6;

/**
 * Finds IP_PKTINFO / IPV6_PKTINFO among the control messages at bytes [at, at+len) of `buf32`'s
 * buffer (`at` 8-aligned, as msg_control is) and writes the local address to out32[w, w+6). Returns
 * its family, or 0 (written too) when there is none.
 */
export function readLocalAddress(buf32: Int32Array, at: number, len: number, out32: Int32Array, w: number): number {
  let o = 0;
  while (o + CMSG_HDR <= len) {
    const c = at + o;
    const clen = buf32[c >>> 2]!; // size_t, low word (control room is < 4 GiB)
    if (clen < CMSG_HDR || o + clen > len) break;
    const level = buf32[(c + 8) >>> 2];
    const type = buf32[(c + 12) >>> 2];
    if (level === SOL_IP && type === IP_PKTINFO && clen >= CMSG_LEN_PKTINFO4) {
      // ipi_spec_dst, not ipi_addr: for unicast both are the destination, for a broadcast the
      // former is the local address a reply should come from (the kernel's own choice).
      out32[w] = AF_INET;
      out32[w + 1] = buf32[(c + 16) >>> 2]!;
      out32[w + 2] = buf32[(c + 20) >>> 2]!;
      out32[w + 3] = 0;
      out32[w + 4] = 0;
      out32[w + 5] = 0;
      return AF_INET;
    }
    if (level === SOL_IPV6 && type === IPV6_PKTINFO && clen >= CMSG_LEN_PKTINFO6) {
      out32[w] = AF_INET6;
      out32[w + 1] = buf32[(c + 32) >>> 2]!;
      out32[w + 2] = buf32[(c + 16) >>> 2]!;
      out32[w + 3] = buf32[(c + 20) >>> 2]!;
      out32[w + 4] = buf32[(c + 24) >>> 2]!;
      out32[w + 5] = buf32[(c + 28) >>> 2]!;
      return AF_INET6;
    }
    o += (clen + 7) & ~7;
  }
  out32[w] = 0;
  return 0;
}

/** CMSG_SPACE of the pktinfo cmsg for a local address of `family` (0 when there is none). */
export function pktinfoSpace(family: number): number {
  return family === AF_INET ? CMSG_SPACE_PKTINFO4 : family === AF_INET6 ? CMSG_SPACE_PKTINFO6 : 0;
}

/**
 * Writes the IP_PKTINFO / IPV6_PKTINFO cmsg naming local32[w, w+6) as the source at byte `at` of
 * `ctl32`'s buffer (8-aligned); returns its CMSG_SPACE, 0 when the record holds no address.
 */
export function writePktinfo(ctl32: Uint32Array | Int32Array, at: number, local32: Int32Array, w: number): number {
  const family = local32[w];
  const i = at >>> 2;
  if (family === AF_INET) {
    ctl32[i] = CMSG_LEN_PKTINFO4;
    ctl32[i + 1] = 0;
    ctl32[i + 2] = SOL_IP;
    ctl32[i + 3] = IP_PKTINFO;
    // ipi_ifindex 0: the source address alone decides (Linux accepts any local address on any
    // interface), and the route keeps choosing the way out — pinning the arrival interface would
    // break a host whose replies take another interface, or whose address moved to one.
    ctl32[i + 4] = 0;
    ctl32[i + 5] = local32[w + 2]!;
    ctl32[i + 6] = 0;
    ctl32[i + 7] = 0;
    return CMSG_SPACE_PKTINFO4;
  }
  if (family === AF_INET6) {
    ctl32[i] = CMSG_LEN_PKTINFO6;
    ctl32[i + 1] = 0;
    ctl32[i + 2] = SOL_IPV6;
    ctl32[i + 3] = IPV6_PKTINFO;
    const a0 = local32[w + 2]!;
    ctl32[i + 4] = a0;
    ctl32[i + 5] = local32[w + 3]!;
    ctl32[i + 6] = local32[w + 4]!;
    ctl32[i + 7] = local32[w + 5]!;
    // The interface only for a link-local source (fe80::/10), which means nothing without one;
    // otherwise 0 for the same reason as IPv4's.
    ctl32[i + 8] = (a0 & 0xff) === 0xfe && (a0 & 0xc000) === 0x8000 ? local32[w + 1]! : 0;
    ctl32[i + 9] = 0;
    return CMSG_SPACE_PKTINFO6;
  }
  return 0;
}
