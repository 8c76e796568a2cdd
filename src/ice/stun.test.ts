import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ChannelDataView, looksLikeChannelData, writeChannelDataHeader } from "./channel-data.ts";
import { ReasonCounters, readStun, type StunDropReason } from "./drops.ts";
import {
  Attr, checkIntegrity, crc32, FAMILY_V6, longTermKey, looksLikeStun, messageType, parseStun, shortTermKey, StunClass, StunMessage, StunMethod,
  StunParseError, StunWriter, TRANSPORT_UDP,
} from "./stun.ts";

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
function parsed(b: Uint8Array): StunMessage {
  const m = parseStun(b);
  if (m instanceof StunParseError) throw m;
  return m;
}

// RFC 5769 (test vectors for STUN), §2.1–2.4, byte for byte.
const rfc5769Request = hex(`
  00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
  00 24 00 04 6e 00 01 ff
  80 29 00 08 93 2f f9 b1 51 26 3b 36
  00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
  00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
  80 28 00 04 e5 7a 3b cf`);
const rfc5769V4Response = hex(`
  01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 08 00 01 a1 47 e1 12 a6 43
  00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
  80 28 00 04 c0 7d 4c 96`);
const rfc5769V6Response = hex(`
  01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
  00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
  80 28 00 04 c8 fb 0b 4c`);
const rfc5769LongTerm = hex(`
  00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
  00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
  00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
  00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
  00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66`);
const ICE_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt";

describe("RFC 5769 test vectors", () => {
  test("the sample request parses, its integrity checks with the short-term password and its fingerprint is correct", () => {
    const m = parsed(rfc5769Request);
    expect(m.method).toBe(StunMethod.binding);
    expect(m.cls).toBe(StunClass.request);
    expect(m.tid).toBe("b7e7a701bc34d686fa87dfae");
    expect(m.software).toBe("STUN test client");
    expect(m.priority).toBe(0x6e0001ff);
    expect(m.iceControlled).toBe(0x932ff9b151263b36n);
    expect(m.username).toBe("evtj:h6vY");
    expect(m.hasFingerprint).toBe(true);
    expect(checkIntegrity(m, shortTermKey(ICE_PASSWORD))).toBe("ok");
    expect(checkIntegrity(m, shortTermKey("wrong"))).toBe("mismatch");
  });

  test("the IPv4 response yields 192.0.2.1:32853", () => {
    const m = parsed(rfc5769V4Response);
    expect(m.cls).toBe(StunClass.success);
    expect(m.software).toBe("test vector");
    expect(m.xorMappedAddress).toEqual({ address: "192.0.2.1", port: 32853 });
    expect(checkIntegrity(m, shortTermKey(ICE_PASSWORD))).toBe("ok");
  });

  test("the IPv6 response yields [2001:db8:1234:5678:11:2233:4455:6677]:32853", () => {
    const m = parsed(rfc5769V6Response);
    expect(m.xorMappedAddress).toEqual({ address: "2001:db8:1234:5678:11:2233:4455:6677", port: 32853 });
    expect(checkIntegrity(m, shortTermKey(ICE_PASSWORD))).toBe("ok");
  });

  test("the long-term credential request checks with MD5(username:realm:password)", () => {
    const m = parsed(rfc5769LongTerm);
    expect(m.username).toBe("\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9");
    expect(m.realm).toBe("example.org");
    expect(m.nonce).toBe("f//499k954d6OL34oL9FSTvy64sA");
    expect(m.hasFingerprint).toBe(false);
    // The password "The\u00ADM\u00AAtr\u2168" after SASLprep (RFC 5769 §2.4).
    expect(checkIntegrity(m, longTermKey(m.username!, m.realm!, "TheMatrIX"))).toBe("ok");
    expect(checkIntegrity(m, longTermKey(m.username!, m.realm!, "TheMatrix"))).toBe("mismatch");
  });

  test("a flipped bit anywhere before the fingerprint is caught by it", () => {
    for (let i = 24; i < rfc5769Request.length - 8; i++) {
      const b = rfc5769Request.slice();
      b[i]! ^= 0x01;
      const m = parseStun(b);
      // Padding bytes are not covered by meaning, but the CRC covers them too.
      expect(m instanceof StunParseError ? m.kind : "parsed").toMatch(/bad_fingerprint|bad_attribute|truncated_attribute|after_fingerprint/);
    }
  });
});

describe("building", () => {
  const tid = hex("0102030405060708090a0b0c");

  test("a TURN Allocate with every attribute round-trips, integrity (SHA-1 and SHA-256) and fingerprint included", () => {
    const key = longTermKey("user", "realm", "pass");
    const b = new StunWriter(StunMethod.allocate, StunClass.request, tid)
      .u8(Attr.REQUESTED_TRANSPORT, TRANSPORT_UDP)
      .u8(Attr.ADDITIONAL_ADDRESS_FAMILY, FAMILY_V6)
      .u32(Attr.LIFETIME, 600)
      .text(Attr.USERNAME, "user")
      .text(Attr.REALM, "realm")
      .text(Attr.NONCE, "nonce")
      .text(Attr.SOFTWARE, "glassgate")
      .address(Attr.XOR_PEER_ADDRESS, { address: "203.0.113.7", port: 51820 })
      .address(Attr.XOR_PEER_ADDRESS, { address: "2001:db8::7", port: 1 })
      .address(Attr.MAPPED_ADDRESS, { address: "198.51.100.1", port: 65535 })
      .channelNumber(0x4abc)
      .bytes(Attr.DATA, Uint8Array.of(1, 2, 3))
      .u64(Attr.ICE_CONTROLLING, 0xffffffff00000001n)
      .flag(Attr.USE_CANDIDATE)
      .errorCode(438, "Stale Nonce")
      .integrity(key)
      .integrity(key, true)
      .fingerprint()
      .finish();
    expect(b.length % 4).toBe(0);
    const m = parsed(b);
    expect(m.method).toBe(StunMethod.allocate);
    expect(m.requestedTransport).toBe(17);
    expect(m.additionalAddressFamily).toBe(FAMILY_V6);
    expect(m.lifetime).toBe(600);
    expect([m.username, m.realm, m.nonce, m.software]).toEqual(["user", "realm", "nonce", "glassgate"]);
    expect(m.xorPeerAddresses).toEqual([{ address: "203.0.113.7", port: 51820 }, { address: "2001:db8::7", port: 1 }]);
    expect(m.mappedAddress).toEqual({ address: "198.51.100.1", port: 65535 });
    expect(m.channelNumber).toBe(0x4abc);
    expect([...m.data!]).toEqual([1, 2, 3]);
    expect(m.iceControlling).toBe(0xffffffff00000001n);
    expect(m.useCandidate).toBe(true);
    expect(m.errorCode).toEqual({ code: 438, reason: "Stale Nonce" });
    expect(checkIntegrity(m, key)).toBe("ok"); // the SHA-256 one, which wins
    expect(checkIntegrity(m, longTermKey("user", "realm", "other"))).toBe("mismatch");
    expect(m.hasFingerprint).toBe(true);
  });

  test("the class and method bits interleave as RFC 8489 §5 draws them", () => {
    expect(messageType(StunMethod.binding, StunClass.request)).toBe(0x0001);
    expect(messageType(StunMethod.binding, StunClass.success)).toBe(0x0101);
    expect(messageType(StunMethod.binding, StunClass.error)).toBe(0x0111);
    expect(messageType(StunMethod.data, StunClass.indication)).toBe(0x0017);
    expect(messageType(StunMethod.channelBind, StunClass.success)).toBe(0x0109);
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xfff }), fc.integer({ min: 0, max: 3 }), (method, cls) => {
      const m = parsed(new StunWriter(method, cls as StunClass, tid).finish());
      return m.method === method && m.cls === cls;
    }));
  });

  test("attributes after MESSAGE-INTEGRITY other than the SHA-256 one and FINGERPRINT are ignored", () => {
    const m = parsed(new StunWriter(StunMethod.binding, StunClass.request, tid).integrity(shortTermKey("p")).u32(Attr.LIFETIME, 5).fingerprint().finish());
    expect(m.lifetime).toBeUndefined();
    expect(checkIntegrity(m, shortTermKey("p"))).toBe("ok");
  });

  test("a message without integrity says so", () => {
    expect(checkIntegrity(parsed(new StunWriter(StunMethod.binding, StunClass.request, tid).finish()), shortTermKey("p"))).toBe("missing");
  });

  test("an unknown comprehension-required attribute is listed, an optional one skipped", () => {
    const m = parsed(new StunWriter(StunMethod.binding, StunClass.success, tid).u32(0x0018, 0).u32(0xc001, 0).finish());
    expect(m.unknownRequired).toEqual([0x0018]);
  });

  test("looksLikeStun and looksLikeChannelData split the demux by the first byte", () => {
    expect(looksLikeStun(rfc5769Request)).toBe(true);
    expect(looksLikeChannelData(rfc5769Request)).toBe(false);
    expect(looksLikeStun(Uint8Array.of(0x40, 0, 0, 0))).toBe(false);
    expect(looksLikeChannelData(Uint8Array.of(0x40, 0, 0, 0))).toBe(true);
    expect(looksLikeStun(Uint8Array.of(1, 0, 0, 0, ...new Uint8Array(144)))).toBe(false); // a WireGuard initiation
  });
});

describe("strict parsing", () => {
  const tid = hex("0102030405060708090a0b0c");
  const base = () => new StunWriter(StunMethod.binding, StunClass.request, tid);
  const kind = (b: Uint8Array) => {
    const m = parseStun(b);
    return m instanceof StunParseError ? m.kind : "ok";
  };

  test("each way a message can be malformed has its own reason", () => {
    expect(kind(new Uint8Array(19))).toBe("truncated");
    const ok = base().u32(Attr.LIFETIME, 1).finish();
    expect(kind(Uint8Array.of(0x80, ...ok.subarray(1)))).toBe("not_stun");
    expect(kind(Uint8Array.of(...ok.subarray(0, 4), 0, ...ok.subarray(5)))).toBe("bad_cookie");
    expect(kind(Uint8Array.of(...ok, 0, 0, 0, 0))).toBe("length_mismatch");
    const unaligned = ok.slice(0, ok.length - 2);
    unaligned[3] = unaligned.length - 20;
    expect(kind(unaligned)).toBe("unaligned");
    const cut = ok.slice();
    cut[22] = 0; cut[23] = 8; // LIFETIME claims 8 bytes, 4 are there
    expect(kind(cut)).toBe("truncated_attribute");
    expect(kind(base().bytes(Attr.LIFETIME, new Uint8Array(5)).finish())).toBe("bad_attribute");
    expect(kind(base().bytes(Attr.XOR_MAPPED_ADDRESS, Uint8Array.of(0, 3, 0, 0, 1, 2, 3, 4)).finish())).toBe("bad_attribute");
    expect(kind(base().errorCode(299, "no").finish())).toBe("bad_attribute");
    expect(kind(base().bytes(Attr.USERNAME, Uint8Array.of(0xff)).finish())).toBe("bad_attribute");
    expect(kind(base().channelNumber(0x5000).finish())).toBe("bad_attribute");
    expect(kind(base().fingerprint().u32(Attr.LIFETIME, 1).finish())).toBe("after_fingerprint");
    const fp = base().fingerprint().finish();
    fp[fp.length - 1]! ^= 1;
    expect(kind(fp)).toBe("bad_fingerprint");
  });

  test("fuzz: any input parses or fails with a StunParseError, counted exactly once under its reason", () => {
    const valid = [rfc5769Request, rfc5769V4Response, rfc5769V6Response, rfc5769LongTerm];
    const mutated = fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(), fc.boolean())
      .map(([v, flips, cut, doCut]) => {
        const b = v.slice();
        for (const [at, x] of flips) b[at % b.length] = x;
        return doCut ? b.subarray(0, cut % (b.length + 1)) : b;
      });
    // Random attribute soup behind a valid header: exercises every attribute reader.
    const soup = fc.array(fc.tuple(fc.constantFrom(...Object.values(Attr), 0x0018, 0xc001), fc.uint8Array({ maxLength: 40 })), { maxLength: 8 })
      .map((attrs) => {
        const w = new StunWriter(StunMethod.allocate, StunClass.success, tid);
        for (const [t, v] of attrs) w.bytes(t, v);
        return w.finish();
      });
    const drops = new ReasonCounters<StunDropReason>();
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 120 }), mutated, soup), (b) => {
      const before = drops.total;
      const m = readStun(b, b.length, drops);
      expect(drops.total - before).toBe(m ? 0 : 1);
      if (m) checkIntegrity(m, shortTermKey(ICE_PASSWORD)); // never throws either
    }), { numRuns: 20_000 });
    // Every reason the fuzzer can reach shows up in the counts.
    expect(Object.keys(drops.snapshot()).length).toBeGreaterThanOrEqual(6);
  });
});

describe("ChannelData", () => {
  const view = new ChannelDataView();

  test("a header written in front of a payload parses back to the channel and payload", () => {
    const buf = new Uint8Array(4 + 5);
    buf.set([9, 8, 7, 6, 5], 4);
    const n = writeChannelDataHeader(buf, 0x4001, 5);
    expect(n).toBe(9);
    expect(view.parse(buf, n)).toBeUndefined();
    expect([view.channel, view.dataAt, view.dataLength]).toEqual([0x4001, 4, 5]);
  });

  test("padding up to a multiple of 4 is accepted over UDP, more or less is not", () => {
    const buf = new Uint8Array(16);
    writeChannelDataHeader(buf, 0x4fff, 5);
    expect(view.parse(buf, 9)).toBeUndefined();
    expect(view.parse(buf, 12)).toBeUndefined();
    expect(view.parse(buf, 10)).toBe("channel_length");
    expect(view.parse(buf, 16)).toBe("channel_length");
    expect(view.parse(buf, 8)).toBe("channel_length");
    expect(view.parse(buf, 3)).toBe("channel_truncated");
    writeChannelDataHeader(buf, 0x5000, 5);
    expect(view.parse(buf, 9)).toBe("channel_number");
  });
});

test("crc32 is the ISO-HDLC one (check value of \"123456789\")", () => {
  expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
});

test("a message inside a pooled node Buffer (as node:dgram hands them) parses, and the pool is left as it was", () => {
  const tid = crypto.getRandomValues(new Uint8Array(12));
  // XOR-MAPPED-ADDRESS is un-XORed in a copy: in a view of the pool it would corrupt the message (and fail FINGERPRINT).
  const m = new StunWriter(StunMethod.binding, StunClass.success, tid).address(Attr.XOR_MAPPED_ADDRESS, { address: "192.0.2.7", port: 4242 }).integrity(shortTermKey("pw")).fingerprint().finish();
  const pool = Buffer.alloc(4096, 0xee);
  pool.set(m, 100);
  const before = Uint8Array.from(pool);
  const parsed = parseStun(pool.subarray(100, 100 + m.length));
  expect(parsed).toBeInstanceOf(StunMessage);
  expect((parsed as StunMessage).xorMappedAddress).toEqual({ address: "192.0.2.7", port: 4242 });
  expect(Uint8Array.from(pool)).toEqual(before);
});
