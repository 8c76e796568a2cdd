// The virtio_net_hdr a TUN opened with IFF_VNET_HDR puts in front of every packet it reads and
// expects in front of every packet written to it: how the kernel hands us (and takes from us)
// TCP/UDP super-packets with the checksum left to the other side. Facts from Linux
// include/uapi/linux/virtio_net.h (struct virtio_net_hdr, 10 bytes); the fields are little-endian
// because a TUN without TUNSETVNETLE/BE uses the host's order, and this gateway runs on x86/arm64.

/** sizeof(struct virtio_net_hdr) — the TUN default (TUNSETVNETHDRSZ not used). */
export const VNET_HDR_LEN = 10;

/** flags: csum_start/csum_offset are valid and the checksum there is to be completed. */
export const VNET_F_NEEDS_CSUM = 1;
/** flags: the checksum was already checked (receive side only). */
export const VNET_F_DATA_VALID = 2;

export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3; // UFO: fragmentation, never accepted here
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_UDP_L4 = 5;
/** gso_type bit: the TCP super-packet had CWR set (the segmenter keeps it on the first segment only). */
export const VNET_GSO_ECN = 0x80;

/** One header, read into reusable fields (no object per packet). */
export class VnetHeader {
  flags = 0;
  gsoType = 0;
  hdrLen = 0;
  gsoSize = 0;
  csumStart = 0;
  csumOffset = 0;

  /** Fills the fields from buf[at, at+10). The caller checks that 10 bytes are there. */
  read(buf: Uint8Array, at: number): this {
    this.flags = buf[at]!;
    this.gsoType = buf[at + 1]!;
    this.hdrLen = buf[at + 2]! | (buf[at + 3]! << 8);
    this.gsoSize = buf[at + 4]! | (buf[at + 5]! << 8);
    this.csumStart = buf[at + 6]! | (buf[at + 7]! << 8);
    this.csumOffset = buf[at + 8]! | (buf[at + 9]! << 8);
    return this;
  }
}

/** Writes a header at buf[at, at+10). */
export function writeVnetHeader(buf: Uint8Array, at: number, flags: number, gsoType: number, hdrLen: number, gsoSize: number, csumStart: number, csumOffset: number): void {
  buf[at] = flags;
  buf[at + 1] = gsoType;
  buf[at + 2] = hdrLen & 0xff;
  buf[at + 3] = hdrLen >>> 8;
  buf[at + 4] = gsoSize & 0xff;
  buf[at + 5] = gsoSize >>> 8;
  buf[at + 6] = csumStart & 0xff;
  buf[at + 7] = csumStart >>> 8;
  buf[at + 8] = csumOffset & 0xff;
  buf[at + 9] = csumOffset >>> 8;
}

/** The all-zero header of a lone packet whose checksums are complete. */
export function writeZeroVnetHeader(buf: Uint8Array, at: number): void {
  for (let i = 0; i < VNET_HDR_LEN; i++) buf[at + i] = 0;
}
