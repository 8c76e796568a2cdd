import { expect, test } from "bun:test";
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6, VNET_HDR_LEN, VnetHeader, writeVnetHeader, writeZeroVnetHeader } from "./vnet-header.ts";

test("a header written is read back field by field, little-endian as the kernel lays it out", () => {
  const buf = new Uint8Array(14).fill(0xee);
  writeVnetHeader(buf, 2, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6, 72, 1428, 40, 16);
  // struct virtio_net_hdr { u8 flags; u8 gso_type; le16 hdr_len; le16 gso_size; le16 csum_start; le16 csum_offset; }
  expect([...buf]).toEqual([0xee, 0xee, 1, 4, 72, 0, 0x94, 0x05, 40, 0, 16, 0, 0xee, 0xee]);
  const h = new VnetHeader().read(buf, 2);
  expect({ ...h }).toEqual({ flags: 1, gsoType: 4, hdrLen: 72, gsoSize: 1428, csumStart: 40, csumOffset: 16 });
});

test("a zero header clears exactly ten bytes", () => {
  const buf = new Uint8Array(12).fill(9);
  writeZeroVnetHeader(buf, 1);
  expect(VNET_HDR_LEN).toBe(10);
  expect([...buf]).toEqual([9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
});
