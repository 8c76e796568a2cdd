// Login throttling: slows password guessing without handing a stranger a way to lock the real admin
// out. Every attempt is counted *before* its password is checked (the check awaits argon2, so a
// limit read before the await and charged after it lets a parallel burst through unchecked).
//
// Three budgets:
// - Per address: ADDRESS.free attempts, then each further one must wait an exponentially growing
//   delay (1 s, 2 s, 4 s … at most 60 s) after the previous. This bounds the argon2 work and the
//   guesses from one address, over all usernames (unknown ones included, so it reveals nothing).
// - Per account (the username as typed): ACCOUNT.free attempts, then 1 s, 2 s … at most 15 min
//   between attempts. A delay, never a lockout: a guesser gets a handful of tries an hour, and the
//   owner's correct password still works whenever an attempt is admitted.
// - Per trusted device: a successful login leaves an HttpOnly cookie naming that browser for that
//   account. An attempt for the same account carrying it skips the address and account delays
//   (it is still counted for the account), because behind `ssh -L` or Docker's userland proxy
//   every browser arrives from 127.0.0.1: a stranger's guessing there must not keep the admin out
//   of a browser they have logged in from before. (A new browser on such a noisy address waits
//   like everyone there: at most 60 s, or 15 min if the stranger is guessing this very account.) The device has its own small budget (DEVICE_FAILURES wrong passwords and it is
//   forgotten), so a stolen cookie is no licence to guess either. (OWASP's "device cookies".)
// A success refunds the attempt it was charged (and clears its device's failures) but does not wipe
// the counters: they hold other people's guesses too, and the owner's own browser is past them
// anyway. Counters are forgotten after a quiet hour (address) or day (account).
// Time is passed in; state for quiet keys is forgotten and every map is capped, so a flood of
// made-up usernames or addresses cannot grow memory without bound.

/** The trusted-device cookie (HttpOnly, SameSite=Strict, path /login). */
export const DEVICE_COOKIE = "gg_device";

interface Budget {
  free: number;
  baseMs: number;
  maxMs: number;
  forgetMs: number;
}
export const ADDRESS: Budget = { free: 20, baseMs: 1_000, maxMs: 60_000, forgetMs: 3_600_000 };
export const ACCOUNT: Budget = { free: 5, baseMs: 1_000, maxMs: 15 * 60_000, forgetMs: 24 * 3_600_000 };
export const DEVICE_FAILURES = 5;
/** A throttled key is audited at most this often (each row says how many were refused). */
const AUDIT_EVERY_MS = 60_000;
const MAX_KEYS = 10_000;
const MAX_DEVICES = 1_000;

interface Counter {
  attempts: number;
  last: number;
  refused: number;
  audited: number;
}

export type Admission =
  | { ok: true; trustedDevice: boolean; settle(success: boolean): void }
  | { ok: false; scope: "address" | "account"; retryAfterMs: number; audit?: { refused: number } };

class Counters {
  readonly #map = new Map<string, Counter>();
  constructor(readonly budget: Budget) {}

  /** How long `key` must still wait at `now` (0: may try). */
  wait(key: string, now: number): number {
    const c = this.#map.get(key);
    if (!c) return 0;
    if (now - c.last > this.budget.forgetMs) {
      this.#map.delete(key);
      return 0;
    }
    if (c.attempts < this.budget.free) return 0;
    const delay = Math.min(this.budget.baseMs * 2 ** (c.attempts - this.budget.free), this.budget.maxMs);
    return Math.max(0, c.last + delay - now);
  }

  charge(key: string, now: number): void {
    const c = this.#map.get(key);
    if (c) {
      c.attempts++;
      c.last = now;
      return;
    }
    if (this.#map.size >= MAX_KEYS) this.#evict(now);
    this.#map.set(key, { attempts: 1, last: now, refused: 0, audited: -Infinity });
  }

  refund(key: string): void {
    const c = this.#map.get(key);
    if (c) c.attempts = Math.max(0, c.attempts - 1);
  }

  /** Counts a refusal; returns how many to report when this key is due an audit row. */
  refused(key: string, now: number): number | undefined {
    const c = this.#map.get(key);
    if (!c) return undefined;
    c.refused++;
    if (now - c.audited < AUDIT_EVERY_MS) return undefined;
    const n = c.refused;
    c.refused = 0;
    c.audited = now;
    return n;
  }

  #evict(now: number): void {
    for (const [k, c] of this.#map) if (now - c.last > this.budget.forgetMs || c.attempts < this.budget.free) this.#map.delete(k);
    // Still full: drop the oldest. Only reachable from very many addresses at once, each of which
    // is itself throttled.
    for (const k of this.#map.keys()) {
      if (this.#map.size < MAX_KEYS) break;
      this.#map.delete(k);
    }
  }

  get size(): number {
    return this.#map.size;
  }
}

export class LoginThrottle {
  readonly #addresses = new Counters(ADDRESS);
  readonly #accounts = new Counters(ACCOUNT);
  readonly #devices = new Map<string, { username: string; failures: number }>();

  /** Decides whether this attempt may check a password, and charges it if so. */
  admit(remote: string, username: string, device: string | undefined, now: number): Admission {
    const account = username.slice(0, 64);
    const trusted = device !== undefined ? this.#devices.get(device) : undefined;
    if (trusted && trusted.username === account) {
      // Skips the delays but still counts for the account, so a stolen cookie's guesses add up.
      trusted.failures++;
      this.#accounts.charge(account, now);
      return {
        ok: true,
        trustedDevice: true,
        settle: (success) => {
          if (success) {
            trusted.failures = 0;
            this.#accounts.refund(account);
          } else if (trusted.failures >= DEVICE_FAILURES) this.#devices.delete(device!);
        },
      };
    }
    const addressWait = this.#addresses.wait(remote, now);
    const accountWait = this.#accounts.wait(account, now);
    if (addressWait > 0 || accountWait > 0) {
      const scope = accountWait >= addressWait ? "account" : "address";
      const refused = scope === "account" ? this.#accounts.refused(account, now) : this.#addresses.refused(remote, now);
      return { ok: false, scope, retryAfterMs: Math.max(addressWait, accountWait), ...(refused !== undefined && { audit: { refused } }) };
    }
    this.#addresses.charge(remote, now);
    this.#accounts.charge(account, now);
    return {
      ok: true,
      trustedDevice: false,
      settle: (success) => {
        if (!success) return;
        this.#accounts.refund(account);
        this.#addresses.refund(remote);
      },
    };
  }

  /** After a successful login: a token that lets this browser past the delays for `username`. */
  trustDevice(username: string): string {
    if (this.#devices.size >= MAX_DEVICES) this.#devices.delete(this.#devices.keys().next().value!);
    const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
    this.#devices.set(token, { username: username.slice(0, 64), failures: 0 });
    return token;
  }

  /** For tests: how many keys are tracked (bounded). */
  get tracked(): { addresses: number; accounts: number; devices: number } {
    return { addresses: this.#addresses.size, accounts: this.#accounts.size, devices: this.#devices.size };
  }
}
