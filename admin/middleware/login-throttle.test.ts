import { describe, expect, test } from "bun:test";
import { ACCOUNT, ADDRESS, LoginThrottle } from "./login-throttle.ts";

const T0 = 1_800_000_000_000;

describe("login throttle", () => {
  test("an account's delay doubles after its free attempts and stops growing at 15 minutes", () => {
    const t = new LoginThrottle();
    let now = T0;
    const waits: number[] = [];
    for (let i = 0; i < 30; i++) {
      let a = t.admit(`10.0.0.${i}`, "alice", undefined, now);
      if (!a.ok) {
        waits.push(a.retryAfterMs);
        now += a.retryAfterMs;
        a = t.admit(`10.0.0.${i}`, "alice", undefined, now);
      }
      expect(a.ok).toBe(true);
      if (a.ok) a.settle(false);
    }
    expect(waits.slice(0, 5)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000]);
    expect(Math.max(...waits)).toBe(ACCOUNT.maxMs);
  });

  test("one address is slowed over all usernames, and only after its free attempts", () => {
    const t = new LoginThrottle();
    for (let i = 0; i < ADDRESS.free; i++) expect(t.admit("192.0.2.1", `user${i}`, undefined, T0).ok).toBe(true);
    const r = t.admit("192.0.2.1", "someone-else", undefined, T0);
    expect(r).toMatchObject({ ok: false, scope: "address", retryAfterMs: 1_000 });
    expect(t.admit("192.0.2.2", "someone-else", undefined, T0).ok).toBe(true);
    // Quiet for over an hour: forgotten.
    expect(t.admit("192.0.2.1", "someone-else", undefined, T0 + ADDRESS.forgetMs + 1).ok).toBe(true);
  });

  test("a flood of made-up usernames from many addresses keeps memory bounded", () => {
    const t = new LoginThrottle();
    for (let i = 0; i < 50_000; i++) {
      const a = t.admit(`a${i}`, `u${i}`, "not-a-device", T0 + i);
      if (a.ok) a.settle(false);
    }
    expect(t.tracked.accounts).toBeLessThanOrEqual(10_000);
    expect(t.tracked.addresses).toBeLessThanOrEqual(10_000);
    for (let i = 0; i < 5_000; i++) t.trustDevice(`u${i}`);
    expect(t.tracked.devices).toBeLessThanOrEqual(1_000);
  });

  test("a device cookie works only for the account it was issued to", () => {
    const t = new LoginThrottle();
    const device = t.trustDevice("alice");
    for (let i = 0; i < ACCOUNT.free; i++) {
      const a = t.admit("127.0.0.1", "bob", device, T0);
      if (a.ok) a.settle(false);
    }
    expect(t.admit("127.0.0.1", "bob", device, T0).ok).toBe(false);
    expect(t.admit("127.0.0.1", "alice", device, T0)).toMatchObject({ ok: true, trustedDevice: true });
  });
});
