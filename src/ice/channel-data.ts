// TURN ChannelData (RFC 8656 §12.4): the relay's data path. A 4-byte header — channel number
// (0x4000–0x4fff) and payload length — then the payload, instead of a ~36-byte Send/Data
// indication. This is per packet, so both directions work on caller-owned buffers and allocate
// nothing: encode writes a header in place, decode fills a reusable view.

import { isChannelNumber } from "./stun.ts";

export const CHANNEL_DATA_HEADER = 4;

export type ChannelDataErrorKind =
  | "channel_truncated" // shorter than the 4-byte header
  | "channel_number" // first two bits 01 but the number is in the reserved 0x5000–0x7fff
  | "channel_length"; // the length field disagrees with the datagram beyond the allowed padding

export const CHANNEL_DATA_ERROR_KINDS: readonly ChannelDataErrorKind[] = ["channel_truncated", "channel_number", "channel_length"];

/** Could this be ChannelData? First byte 64–79 (RFC 7983's demux rule, as snownet's `node.rs`). */
export function looksLikeChannelData(buf: Uint8Array, length = buf.length): boolean {
  return length >= 1 && buf[0]! >= 0x40 && buf[0]! <= 0x4f;
}

/** The parsed shape of one ChannelData message: offsets into the caller's buffer. */
export class ChannelDataView {
  channel = 0;
  dataAt = CHANNEL_DATA_HEADER;
  dataLength = 0;

  /**
   * Parses `buf[0, length)`. Over UDP the sender may pad to a multiple of 4 (§12.5); more
   * than that, or less than the declared length, is not a ChannelData message.
   */
  parse(buf: Uint8Array, length = buf.length): ChannelDataErrorKind | undefined {
    if (length < CHANNEL_DATA_HEADER) return "channel_truncated";
    const channel = (buf[0]! << 8) | buf[1]!;
    if (!isChannelNumber(channel)) return "channel_number";
    const dataLength = (buf[2]! << 8) | buf[3]!;
    const end = CHANNEL_DATA_HEADER + dataLength;
    if (end > length || (end !== length && length !== ((end + 3) & ~3))) return "channel_length";
    this.channel = channel;
    this.dataLength = dataLength;
    return undefined;
  }
}

/**
 * Writes the header for a payload already placed at `buf[4, 4 + dataLength)` — the shell leaves
 * 4 bytes of headroom so relaying copies nothing. Returns the datagram's length: unpadded, as
 * UDP allows and every TURN server accepts.
 */
export function writeChannelDataHeader(buf: Uint8Array, channel: number, dataLength: number): number {
  buf[0] = channel >> 8;
  buf[1] = channel & 0xff;
  buf[2] = dataLength >> 8;
  buf[3] = dataLength & 0xff;
  return CHANNEL_DATA_HEADER + dataLength;
}
