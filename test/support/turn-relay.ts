// A TURN relay small enough to read, for the client's simulated-time tests: long-term
// credentials with nonces, allocations with lifetimes, channels and permissions, and knobs for
// the ways real relays say no (stale nonces, no IPv6, silence). Not a relay to deploy: it
// relays nothing, it only answers, using the same codec as the client.

import { Attr, checkIntegrity, longTermKey, parseStun, StunClass, StunMessage, StunMethod, StunWriter } from "../../src/ice/stun.ts";
import type { Endpoint } from "../../src/wire/index.ts";

export interface TestRelayOptions {
  address: Endpoint;
  username: string;
  password: string;
  realm?: string;
  /** Relayed address handed out per family. */
  relayV4?: Endpoint;
  relayV6?: Endpoint;
  lifetimeS?: number;
  /** Answer an ADDITIONAL-ADDRESS-FAMILY request with 440 instead of a dual allocation. */
  refuseDual?: boolean;
}

export class TestRelay {
  realm: string;
  nonce = "nonce-1";
  /** Tests flip these to provoke the client's error paths. */
  silent = false;
  staleNonceNext = false;
  refuseRefresh: number | undefined;
  refuseAllocate: number | undefined;
  lifetimeS: number;
  allocated = false;
  readonly channels = new Map<number, Endpoint>();
  readonly permissions = new Set<string>();
  readonly received: StunMessage[] = [];
  readonly #key: Uint8Array;

  constructor(readonly opts: TestRelayOptions) {
    this.realm = opts.realm ?? "example.org";
    this.lifetimeS = opts.lifetimeS ?? 600;
    this.#key = longTermKey(opts.username, this.realm, opts.password);
  }

  /** Answers one datagram from `from`; undefined when it stays silent. */
  answer(data: Uint8Array, from: Endpoint): Uint8Array | undefined {
    const m = parseStun(data);
    if (!(m instanceof StunMessage)) return undefined; // ChannelData: a relay would forward it
    this.received.push(m);
    if (this.silent || m.cls !== StunClass.request) return undefined;
    const reply = (cls: StunClass) => new StunWriter(m.method, cls, m.transactionId);
    if (m.method === StunMethod.binding) return reply(StunClass.success).address(Attr.XOR_MAPPED_ADDRESS, from).finish();
    // Long-term credentials (RFC 8489 §9.2.4): no MAC → 401 with realm and nonce; stale → 438.
    const challenge = (code: number, reason: string) =>
      reply(StunClass.error).errorCode(code, reason).text(Attr.REALM, this.realm).text(Attr.NONCE, this.nonce).finish();
    if (m.integrityAt < 0) return challenge(401, "Unauthorized");
    if (m.username !== this.opts.username || checkIntegrity(m, this.#key) !== "ok") return challenge(401, "Unauthorized");
    if (this.staleNonceNext || m.nonce !== this.nonce) {
      this.staleNonceNext = false;
      this.nonce = `nonce-${Number(this.nonce.split("-")[1]) + 1}`;
      return challenge(438, "Stale Nonce");
    }
    const ok = () => reply(StunClass.success);
    const err = (code: number, reason: string) => reply(StunClass.error).errorCode(code, reason).integrity(this.#key).finish();
    switch (m.method) {
      case StunMethod.allocate: {
        if (this.allocated) return err(437, "Allocation Mismatch");
        if (this.refuseAllocate === 420) return reply(StunClass.error).errorCode(420, "Unknown Attribute").bytes(Attr.UNKNOWN_ATTRIBUTES, Uint8Array.of(0x80, 0x00)).integrity(this.#key).finish();
        if (this.refuseAllocate !== undefined) return err(this.refuseAllocate, "Refused");
        if (m.additionalAddressFamily !== undefined && this.opts.refuseDual) return err(440, "Address Family not Supported");
        this.allocated = true;
        const w = ok().address(Attr.XOR_MAPPED_ADDRESS, from).u32(Attr.LIFETIME, this.lifetimeS);
        if (this.opts.relayV4) w.address(Attr.XOR_RELAYED_ADDRESS, this.opts.relayV4);
        if (this.opts.relayV6 && m.additionalAddressFamily !== undefined) w.address(Attr.XOR_RELAYED_ADDRESS, this.opts.relayV6);
        return w.integrity(this.#key).finish();
      }
      case StunMethod.refresh: {
        if (!this.allocated) return err(437, "Allocation Mismatch");
        const lifetime = m.lifetime ?? this.lifetimeS;
        if (this.refuseRefresh !== undefined && lifetime !== 0) return err(this.refuseRefresh, "Refused");
        if (lifetime === 0) {
          this.allocated = false;
          this.channels.clear();
        }
        return ok().u32(Attr.LIFETIME, lifetime).integrity(this.#key).finish();
      }
      case StunMethod.channelBind: {
        if (!this.allocated) return err(437, "Allocation Mismatch");
        const peer = m.xorPeerAddresses[0]!;
        this.channels.set(m.channelNumber!, peer);
        this.permissions.add(peer.address);
        return ok().integrity(this.#key).finish();
      }
      case StunMethod.createPermission: {
        if (!this.allocated) return err(437, "Allocation Mismatch");
        for (const p of m.xorPeerAddresses) this.permissions.add(p.address);
        return ok().integrity(this.#key).finish();
      }
      default:
        return err(400, "Bad Request");
    }
  }

  /** A Data indication from `peer`, as a relay sends for a permitted peer without a channel. */
  dataIndication(peer: Endpoint, data: Uint8Array): Uint8Array {
    return new StunWriter(StunMethod.data, StunClass.indication, crypto.getRandomValues(new Uint8Array(12)))
      .address(Attr.XOR_PEER_ADDRESS, peer)
      .bytes(Attr.DATA, data)
      .finish();
  }
}
