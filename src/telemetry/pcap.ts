// The classic pcap file format (what `tcpdump -r` and Wireshark read), for per-connection captures
// of inner traffic. Facts from the format's definition (tcpdump.org/linktypes, pcap-savefile(5)):
// a 24-byte global header — magic 0xa1b2c3d4 (microsecond timestamps) written in the writer's byte
// order, version 2.4, thiszone 0, sigfigs 0, snaplen, link type — then per packet a 16-byte
// record header — ts_sec, ts_usec, incl_len, orig_len — and the packet bytes. We write little
// endian; readers detect the order from the magic.

/** Microsecond-resolution magic (0xa1b23c4d would mean nanoseconds). */
export const PCAP_MAGIC = 0xa1b2c3d4;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
/** LINKTYPE_RAW: each record is a bare IPv4 or IPv6 packet (version from its first nibble) — what a TUN carries. */
export const LINKTYPE_RAW = 101;
/** Largest packet a record holds whole: the largest IP packet a TUN can hand us. */
export const PCAP_SNAPLEN = 65535;
export const PCAP_HEADER_SIZE = 24;
export const PCAP_RECORD_HEADER_SIZE = 16;

/** The file's global header. */
export function pcapHeader(linktype = LINKTYPE_RAW, snaplen = PCAP_SNAPLEN): Uint8Array {
  const out = new Uint8Array(PCAP_HEADER_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, PCAP_MAGIC, true);
  v.setUint16(4, PCAP_VERSION_MAJOR, true);
  v.setUint16(6, PCAP_VERSION_MINOR, true);
  v.setInt32(8, 0, true); // thiszone: timestamps are UTC
  v.setUint32(12, 0, true); // sigfigs
  v.setUint32(16, snaplen, true);
  v.setUint32(20, linktype, true);
  return out;
}

/**
 * One record: header + a copy of `packet[0..length)` (cut at `snaplen`, orig_len keeps the real
 * length). `atMs` is Unix time in milliseconds, fractions kept down to the microsecond.
 */
export function pcapRecord(packet: Uint8Array, length: number, atMs: number, snaplen = PCAP_SNAPLEN): Uint8Array {
  const incl = Math.min(length, snaplen);
  const out = new Uint8Array(PCAP_RECORD_HEADER_SIZE + incl);
  const v = new DataView(out.buffer);
  const us = Math.round(atMs * 1000);
  v.setUint32(0, Math.floor(us / 1_000_000), true);
  v.setUint32(4, us % 1_000_000, true);
  v.setUint32(8, incl, true);
  v.setUint32(12, length, true);
  out.set(packet.subarray(0, incl), PCAP_RECORD_HEADER_SIZE);
  return out;
}

/** A whole file from its records. */
export function pcapFile(records: readonly Uint8Array[], linktype = LINKTYPE_RAW): Uint8Array {
  const header = pcapHeader(linktype);
  let size = header.length;
  for (const r of records) size += r.length;
  const out = new Uint8Array(size);
  out.set(header, 0);
  let at = header.length;
  for (const r of records) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}
