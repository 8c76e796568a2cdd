import { expect, test } from "bun:test";
import { DestinationCache, SourceCache } from "./udp-endpoints.ts";
import { SOCKADDR_ROOM } from "./udp-sys.ts";

/** The sockaddr the kernel would write for this endpoint (DestinationCache encodes the same way). */
function sockaddr(address: string, port: number): Uint8Array {
  const d = new DestinationCache(1);
  const i = d.lookup({ address, port });
  return d.mem.slice(i * SOCKADDR_ROOM, (i + 1) * SOCKADDR_ROOM);
}

test("a source gets one Endpoint object however often it sends, in canonical text form", () => {
  const c = new SourceCache(16);
  const raw = sockaddr("192.0.2.7", 51820);
  const first = c.lookup(raw, 0);
  expect(first).toEqual({ address: "192.0.2.7", port: 51820 });
  for (let i = 0; i < 100; i++) expect(c.lookup(raw, 0)).toBe(first!);
  expect(c.misses).toBe(1);
  expect(c.lookup(sockaddr("2001:db8:0:0:0:0:0:1", 443), 0)).toEqual({ address: "2001:db8::1", port: 443 });
  expect(c.lookup(sockaddr("192.0.2.7", 51821), 0)).toEqual({ address: "192.0.2.7", port: 51821 });
});

test("the source cache stays bounded under many sources and never answers with the wrong one", () => {
  const c = new SourceCache(4); // 4 sets × 4 ways = 16 entries
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 500; i++) {
      const address = `10.${i >> 8}.${i & 0xff}.${round + 1}`;
      expect(c.lookup(sockaddr(address, 1000 + i), 0)).toEqual({ address, port: 1000 + i });
    }
  }
  expect(c.misses).toBeGreaterThan(16);
});

test("a sockaddr of another family is no endpoint", () => {
  expect(new SourceCache().lookup(new Uint8Array(32), 0)).toBeUndefined();
});

test("destinations: one entry per endpoint object, rejected text answered with -1, and a full cache starts over", () => {
  const d = new DestinationCache(2);
  const a = { address: "127.0.0.1", port: 9 };
  const b = { address: "::1", port: 10 };
  expect(d.lookup(a)).toBe(0);
  expect(d.lookup(a)).toBe(0);
  expect(d.lookup(b)).toBe(1);
  expect([d.family[0], d.family[1], d.nameLength(0), d.nameLength(1)]).toEqual([4, 6, 16, 28]);
  expect(d.lookup({ address: "example.org", port: 1 })).toBe(-1);
  expect(d.lookup({ address: "127.0.0.1", port: 70000 })).toBe(-1);
  const c = { address: "127.0.0.2", port: 11 };
  expect(d.lookup(c)).toBe(0); // full: forgotten and re-encoded
  expect(new SourceCache().lookup(d.mem, 0)).toEqual(c);
});

test("each source keeps the local address it last arrived on, until its entry is reused or the address refused", () => {
  const c = new SourceCache(1); // one set of four ways: the fifth source evicts the first
  const local = (last: number) => Int32Array.of(2 /* AF_INET */, 1, new Int32Array(Uint8Array.of(10, 0, 0, last).buffer)[0]!, 0, 0, 0);
  c.lookup(sockaddr("192.0.2.1", 1), 0);
  c.noteLocal(local(5), 0);
  const at = sockaddr("192.0.2.1", 1);
  const e = c.localAt(at, 0);
  expect(e).toBeGreaterThanOrEqual(0);
  expect(new Uint8Array(c.local.buffer, (e * 6 + 2) * 4, 4)).toEqual(Uint8Array.of(10, 0, 0, 5));
  c.lookup(sockaddr("192.0.2.1", 1), 0);
  c.noteLocal(local(6), 0); // it moved to the other address: the last one wins
  expect(new Uint8Array(c.local.buffer, (e * 6 + 2) * 4, 4)).toEqual(Uint8Array.of(10, 0, 0, 6));
  c.lookup(sockaddr("192.0.2.1", 1), 0);
  c.noteLocal(new Int32Array(6), 0); // a datagram without pktinfo changes nothing
  expect(c.localAt(at, 0)).toBe(e);
  expect(c.localAt(sockaddr("192.0.2.1", 2), 0)).toBe(-1); // another port: another peer, never seen
  c.clearLocal(e);
  expect(c.localAt(at, 0)).toBe(-1);
  c.lookup(sockaddr("192.0.2.1", 1), 0);
  c.noteLocal(local(5), 0);
  for (let i = 2; i <= 5; i++) c.lookup(sockaddr("192.0.2.1", i), 0);
  expect(c.localAt(at, 0)).toBe(-1); // evicted: the entry now belongs to another source, which has no local address
  expect(c.local[e * 6]).toBe(0);
});

test("a pinned local address is what the sender answers that endpoint from, until the endpoint's own datagrams say otherwise", () => {
  const c = new SourceCache(16);
  const to = { address: "198.51.100.9", port: 40000 };
  const raw = sockaddr(to.address, to.port);
  expect(c.localAt(raw, 0)).toBe(-1);
  expect(c.pin(to, new Uint8Array([203, 0, 113, 10]))).toBe(true);
  const e = c.localAt(raw, 0);
  expect(e).toBeGreaterThanOrEqual(0);
  const bytes = new Uint8Array(c.local.buffer, c.local.byteOffset + e * 24 + 8, 4);
  expect([...bytes]).toEqual([203, 0, 113, 10]);
  // A family that does not match the endpoint's is refused and changes nothing.
  expect(c.pin(to, new Uint8Array(16))).toBe(false);
  expect([...new Uint8Array(c.local.buffer, c.local.byteOffset + c.localAt(raw, 0) * 24 + 8, 4)]).toEqual([203, 0, 113, 10]);
  // The endpoint's next datagram arrives on another local address: that one wins.
  expect(c.lookup(raw, 0)).toEqual(to);
  const arrived = new Int32Array(6);
  arrived[0] = 2; // AF_INET
  new Uint8Array(arrived.buffer).set([192, 0, 2, 1], 8);
  c.noteLocal(arrived, 0);
  expect([...new Uint8Array(c.local.buffer, c.local.byteOffset + c.localAt(raw, 0) * 24 + 8, 4)]).toEqual([192, 0, 2, 1]);
});
