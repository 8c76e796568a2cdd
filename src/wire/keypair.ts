// One direction-pair of transport keys from one handshake, with the counters and window that go
// with it. Each keypair owns its nonce scratch buffers so the data path allocates nothing.
import type { SessionKeys } from "./handshake.ts";
import { ReplayWindow } from "./replay-window.ts";
import type { SessionIndex } from "./session-index.ts";
import { REJECT_AFTER_TIME, REJECT_COUNTER, REKEY_AFTER_MESSAGES } from "./constants.ts";

export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayWindow();
  /** 12-byte nonces: 4 zero bytes then the 64-bit little-endian counter (whitepaper §5.4.6). */
  readonly sendNonce = new Uint8Array(12);
  readonly recvNonce = new Uint8Array(12);
  readonly sendKey: Uint8Array;
  readonly recvKey: Uint8Array;

  constructor(
    keys: SessionKeys,
    readonly localIndex: SessionIndex,
    readonly remoteIndex: number,
    readonly createdAt: number,
    readonly isInitiator: boolean,
  ) {
    this.sendKey = keys.send;
    this.recvKey = keys.recv;
  }

  /** May we still encrypt with it? (age < REJECT_AFTER_TIME and counter below the limit) */
  canSend(now: number): boolean {
    return now - this.createdAt < REJECT_AFTER_TIME && this.sendCounter < REJECT_COUNTER;
  }

  canReceive(now: number): boolean {
    return now - this.createdAt < REJECT_AFTER_TIME;
  }

  /** Time or message count says a fresh handshake is due (whitepaper §6.2). */
  wantsRekeyOnSend(now: number, rekeyAfterTime: number): boolean {
    return this.sendCounter > REKEY_AFTER_MESSAGES || (this.isInitiator && now - this.createdAt > rekeyAfterTime);
  }

  zeroize(): void {
    this.sendKey.fill(0);
    this.recvKey.fill(0);
  }
}

/** Previous / current / next, as in the whitepaper §6.2 and wireguard-go's Keypairs. */
export class Keypairs {
  previous: Keypair | undefined;
  current: Keypair | undefined;
  /** A responder's new keypair, unused for sending until the initiator proves it has it. */
  next: Keypair | undefined;

  /** Installs a keypair we just derived. */
  install(kp: Keypair): void {
    if (kp.isInitiator) {
      if (this.next) {
        // An unconfirmed responder keypair is still worth receiving on; keep it as previous.
        this.previous?.zeroize();
        this.previous = this.next;
        this.next = undefined;
        this.current?.zeroize();
      } else {
        this.previous?.zeroize();
        this.previous = this.current;
      }
      this.current = kp;
    } else {
      this.next?.zeroize();
      this.next = kp;
      this.previous?.zeroize();
      this.previous = undefined;
    }
  }

  /** Data arrived on `kp`. If it was `next`, it becomes current. Returns true on that rotation. */
  confirm(kp: Keypair): boolean {
    if (kp !== this.next) return false;
    this.previous?.zeroize();
    this.previous = this.current;
    this.current = kp;
    this.next = undefined;
    return true;
  }

  /** The keypair a transport message addressed to `localIndex` belongs to. */
  find(localIndex: number): Keypair | undefined {
    if (this.current?.localIndex === localIndex) return this.current;
    if (this.previous?.localIndex === localIndex) return this.previous;
    if (this.next?.localIndex === localIndex) return this.next;
    return undefined;
  }

  clear(): void {
    for (const kp of [this.previous, this.current, this.next]) kp?.zeroize();
    this.previous = this.current = this.next = undefined;
  }

  /** Local indices of live sessions, newest first, for the admin view. */
  indices(): SessionIndex[] {
    return [this.next, this.current, this.previous].filter((k) => k !== undefined).map((k) => k.localIndex);
  }
}
