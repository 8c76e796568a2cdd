// The per-source handshake limit: 20 messages/s after a burst of 5, per IPv4 address or IPv6 /64.
import { expect, test } from "bun:test";
import { HANDSHAKE_BURST_PER_SOURCE, HANDSHAKE_RATE_PER_SOURCE, RATE_LIMITER_MAX_SOURCES } from "./constants.ts";
import { HandshakeRateLimiter, sourceKey } from "./ratelimiter.ts";

const at = (address: string) => ({ address, port: 51820 });

test("a source gets a burst of 5, then 20 messages per second, however fast it sends", () => {
  const r = new HandshakeRateLimiter();
  const t0 = 1_000_000;
  let allowed = 0;
  for (let i = 0; i < 100; i++) if (r.allow(at("198.51.100.7"), t0)) allowed++;
  expect(allowed).toBe(HANDSHAKE_BURST_PER_SOURCE);
  // Ten seconds of 1000 messages/s: 20 per second get through.
  allowed = 0;
  for (let ms = 1; ms <= 10_000; ms++) if (r.allow(at("198.51.100.7"), t0 + ms)) allowed++;
  expect(allowed).toBe(10 * HANDSHAKE_RATE_PER_SOURCE);
});

test("sources are limited independently; an IPv6 /64 is one source, IPv4-mapped IPv6 is its IPv4 address", () => {
  const r = new HandshakeRateLimiter();
  const burst = (address: string) => {
    let n = 0;
    for (let i = 0; i < 50; i++) if (r.allow(at(address), 0)) n++;
    return n;
  };
  expect(burst("198.51.100.7")).toBe(5);
  expect(burst("198.51.100.8")).toBe(5);
  expect(burst("2001:db8:1:2::1")).toBe(5);
  expect(burst("2001:db8:1:2:ffff:ffff:ffff:ffff")).toBe(0); // same /64
  expect(burst("2001:db8:1:3::1")).toBe(5);
  expect(burst("::ffff:198.51.100.7")).toBe(0); // same as the IPv4 source above
  expect(sourceKey("2001:db8:1:2:aaaa::1%eth0")).toBe(sourceKey("2001:db8:1:2::9"));
});

test("idle sources are forgotten after a second, so the table does not grow with every address ever seen", () => {
  const r = new HandshakeRateLimiter();
  for (let i = 0; i < 1000; i++) r.allow(at(`10.1.${i >> 8}.${i & 255}`), 0);
  expect(r.size).toBe(1000);
  r.allow(at("10.2.0.1"), 2_000);
  expect(r.size).toBe(1);
});

test("the table is capped: past the cap new sources are refused, known ones keep their rate", () => {
  const r = new HandshakeRateLimiter();
  for (let i = 0; i < RATE_LIMITER_MAX_SOURCES; i++) expect(r.allow(at(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`), 0)).toBe(true);
  expect(r.allow(at("192.0.2.1"), 10)).toBe(false);
  expect(r.allow(at("10.0.0.0"), 10)).toBe(true);
  expect(r.size).toBe(RATE_LIMITER_MAX_SOURCES);
});
