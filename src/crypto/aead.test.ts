import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { Aead } from "./aead.ts";
import { nobleAead } from "./aead-noble.ts";
import { loadSodiumAead } from "./aead-sodium.ts";
import { selectAead, selfTest } from "./select.ts";
import { RFC8439_AEAD, XCHACHA_AEAD } from "./vectors.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";

const sodium = (() => {
  try {
    return loadSodiumAead();
  } catch (err) {
    console.warn(`libsodium backend tests skipped: ${(err as Error).message} (.ci/run installs libsodium23)`);
    return undefined;
  }
})();
const backends: Aead[] = sodium ? [nobleAead, sodium] : [nobleAead];
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe.each(backends.map((b) => [b.name, b] as const))("%s backend", (_name, aead) => {
  test("matches RFC 8439 §2.8.2 (ChaCha20-Poly1305)", () => {
    const v = RFC8439_AEAD;
    const out = new Uint8Array(v.sealed.length);
    expect(aead.seal(v.key, v.nonce, v.plaintext, v.aad, out)).toBe(v.sealed.length);
    expect(hex(out)).toBe(hex(v.sealed));
    const back = new Uint8Array(v.plaintext.length);
    expect(aead.open(v.key, v.nonce, v.sealed, v.aad, back)).toBe(v.plaintext.length);
    expect(hex(back)).toBe(hex(v.plaintext));
  });

  test("matches draft-irtf-cfrg-xchacha §A.3.1 (XChaCha20-Poly1305)", () => {
    const v = XCHACHA_AEAD;
    const out = new Uint8Array(v.sealed.length);
    aead.xseal(v.key, v.nonce, v.plaintext, v.aad, out);
    expect(hex(out)).toBe(hex(v.sealed));
    const back = new Uint8Array(v.plaintext.length);
    expect(aead.xopen(v.key, v.nonce, v.sealed, v.aad, back)).toBe(v.plaintext.length);
    expect(hex(back)).toBe(hex(v.plaintext));
  });

  test("any flipped bit in ciphertext, tag, nonce or AD fails authentication", () => {
    const v = RFC8439_AEAD;
    const out = new Uint8Array(v.plaintext.length);
    for (let i = 0; i < v.sealed.length; i++) {
      const bad = v.sealed.slice();
      bad[i]! ^= 1 << (i % 8);
      expect(aead.open(v.key, v.nonce, bad, v.aad, out)).toBe(-1);
      expect(aead.openFrom(v.key, v.nonce, bad, 0, bad.length, out)).toBe(-1);
    }
    const badNonce = v.nonce.slice();
    badNonce[11]! ^= 0x80;
    expect(aead.open(v.key, badNonce, v.sealed, v.aad, out)).toBe(-1);
    const badAad = v.aad.slice();
    badAad[0]! ^= 1;
    expect(aead.open(v.key, v.nonce, v.sealed, badAad, out)).toBe(-1);
    const x = XCHACHA_AEAD;
    const xbad = x.sealed.slice();
    xbad[x.sealed.length - 1]! ^= 1;
    expect(aead.xopen(x.key, x.nonce, xbad, x.aad, out)).toBe(-1);
  });

  test("too-short input and too-small output are refusals, not exceptions", () => {
    const v = RFC8439_AEAD;
    expect(aead.open(v.key, v.nonce, v.sealed.subarray(0, 15), v.aad, new Uint8Array(64))).toBe(-1);
    expect(aead.open(v.key, v.nonce, v.sealed, v.aad, new Uint8Array(10))).toBe(-1);
  });

  test("in-place data-path calls agree with the plain ones, at offsets", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 1500 }), fc.nat(40), (key, nonce, plain, offset) => {
          const expected = new Uint8Array(plain.length + 16);
          aead.seal(key, nonce, plain, new Uint8Array(0), expected);
          const buf = new Uint8Array(offset + plain.length + 16 + 7);
          buf.set(plain, offset);
          expect(aead.sealInPlace(key, nonce, buf, offset, plain.length)).toBe(plain.length + 16);
          expect(hex(buf.subarray(offset, offset + plain.length + 16))).toBe(hex(expected));
          const back = new Uint8Array(plain.length + 3);
          expect(aead.openFrom(key, nonce, buf, offset, plain.length + 16, back)).toBe(plain.length);
          expect(hex(back.subarray(0, plain.length))).toBe(hex(plain));
        }),
      { numRuns: 200 },
    );
  });
});

describe.skipIf(sodium === undefined)("noble and libsodium agree", () => {
  const arb = {
    key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    nonce: fc.uint8Array({ minLength: 12, maxLength: 12 }),
    xnonce: fc.uint8Array({ minLength: 24, maxLength: 24 }),
    data: fc.uint8Array({ maxLength: 2048 }),
    ad: fc.uint8Array({ maxLength: 64 }),
  };

  test("ChaCha20-Poly1305 on random inputs, both directions", () => {
    fc.assert(
      fc.property(arb.key, arb.nonce, arb.data, arb.ad, (k, n, p, a) => {
        const x = new Uint8Array(p.length + 16);
        const y = new Uint8Array(p.length + 16);
        nobleAead.seal(k, n, p, a, x);
        sodium!.seal(k, n, p, a, y);
        expect(hex(x)).toBe(hex(y));
        const back = new Uint8Array(p.length);
        expect(sodium!.open(k, n, x, a, back)).toBe(p.length);
        expect(nobleAead.open(k, n, y, a, back)).toBe(p.length);
        expect(hex(back)).toBe(hex(p));
      }),
      { numRuns: 300 },
    );
  });

  test("XChaCha20-Poly1305 on random inputs", () => {
    fc.assert(
      fc.property(arb.key, arb.xnonce, arb.data, arb.ad, (k, n, p, a) => {
        const x = new Uint8Array(p.length + 16);
        const y = new Uint8Array(p.length + 16);
        nobleAead.xseal(k, n, p, a, x);
        sodium!.xseal(k, n, p, a, y);
        expect(hex(x)).toBe(hex(y));
        expect(nobleAead.xopen(k, n, y, a, new Uint8Array(p.length))).toBe(p.length);
      }),
      { numRuns: 200 },
    );
  });

  test("a random flipped byte fails on both", () => {
    fc.assert(
      fc.property(arb.key, arb.nonce, arb.data, fc.nat(), fc.integer({ min: 1, max: 255 }), (k, n, p, pos, flip) => {
        const sealed = new Uint8Array(p.length + 16);
        sodium!.seal(k, n, p, new Uint8Array(0), sealed);
        sealed[pos % sealed.length]! ^= flip;
        const out = new Uint8Array(p.length);
        expect(nobleAead.open(k, n, sealed, new Uint8Array(0), out)).toBe(-1);
        expect(sodium!.open(k, n, sealed, new Uint8Array(0), out)).toBe(-1);
      }),
      { numRuns: 300 },
    );
  });
});

describe("backend selection", () => {
  test("both backends pass the start-up self test", () => {
    for (const b of backends) expect(selfTest(b)).toBe(true);
  });

  test("GLASSGATE_AEAD=noble forces the reference backend, saying so once", () => {
    const lines: LogLine[] = [];
    const log = new Logger(parseLogFilter("info"), memorySink(lines)).target("crypto");
    expect(selectAead(log, "noble").name).toBe("noble");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "info", target: "crypto", backend: "noble" });
  });

  test.skipIf(sodium === undefined)("libsodium is chosen when it loads", () => {
    const lines: LogLine[] = [];
    expect(selectAead(new Logger(parseLogFilter("info"), memorySink(lines)).target("crypto"), undefined).name).toBe("libsodium");
    expect(lines).toHaveLength(1);
  });

  test("an unknown backend name is a clear error", () => {
    expect(() => selectAead(undefined, "openssl")).toThrow('GLASSGATE_AEAD: "openssl" is not a backend');
  });
});
