// One TURN allocation (RFC 8656) on one relay, sans-IO: the shell feeds datagrams from the relay
// and the clock, and sends what `pollTransmit` returns. The life of an allocation, as snownet
// (Firezone's `allocation.rs`) lives it so the two agree on the wire:
//
//   binding request to each relay address → the first to answer is the one we use, and its
//   XOR-MAPPED-ADDRESS is our server-reflexive candidate → Allocate (UDP, IPv4 + IPv6 via
//   ADDITIONAL-ADDRESS-FAMILY), unauthenticated first, then with the realm and nonce the 401 gave
//   → relayed candidates → Refresh at half the lifetime, a binding every 25 s to keep the NAT
//   mapping towards the relay open, ChannelBind per peer (refreshed at 5 min while in use).
//
// Data goes over channels on caller-owned buffers (`encapsulate`/`decapsulate`, nothing
// allocated per packet). A channel still being bound is used right away: the relay drops what
// arrives before the binding at worst, which is what snownet does rather than queueing.

import { ChannelDataView, CHANNEL_DATA_HEADER, looksLikeChannelData, writeChannelDataHeader } from "./channel-data.ts";
import { ReasonCounters, readStun } from "./drops.ts";
import {
  Attr, checkIntegrity, FAMILY_V6, longTermKey, StunClass, StunMethod, StunWriter, TRANSACTION_ID_SIZE, TRANSPORT_UDP, transactionKey,
  type StunMessage,
} from "./stun.ts";
import { Channel, ChannelTable } from "./turn-channels.ts";
import * as C from "./turn-constants.ts";
import { Transactions, type PendingRequest, type RequestPurpose } from "./turn-transactions.ts";
import { Logger, parseLogFilter, type TargetLogger } from "../telemetry/log.ts";
import type { AllocationFailure, AllocationState, TurnClientOptions, TurnDropReason, TurnEvent } from "./turn-events.ts";
import { formatEndpoint, sameEndpoint, type Endpoint, type Transmit } from "../wire/index.ts";

const silent = new Logger(parseLogFilter("off"), () => {}).target("turn");

export class TurnClient {
  readonly servers: Endpoint[];
  readonly drops = new ReasonCounters<TurnDropReason>();
  readonly failures = new ReasonCounters<AllocationFailure>();
  /** Payload bytes relayed (ChannelData), both ways: for the relay-bytes metric. */
  relayedBytesSent = 0;
  relayedBytesReceived = 0;

  #state: AllocationState = "binding";
  #server: Endpoint | undefined; // the relay address that answered first; everything goes there
  #username: string;
  #password: string;
  #realm: string | undefined;
  readonly #realmFixed: boolean;
  #nonce: string | undefined;
  #key: Uint8Array | undefined;
  #software: string;
  #dual = true; // ask for IPv6 too, until the relay says it cannot (440)
  #relays: Endpoint[] = [];
  #srflx: Endpoint | undefined;
  #host: Endpoint | undefined;
  #lifetime: { at: number; ms: number } | undefined;
  #nextBindingAt = Infinity;
  #reallocateAfterDelete = false;
  /** New allocations made since the last one that held: a relay that refuses each one in turn must not keep us looping. */
  #reallocations = 0;
  readonly #channels = new ChannelTable();
  /** Peer addresses we want permissions for; `installedAt` once the relay confirmed. */
  readonly #permissions = new Map<string, { installedAt: number | undefined; inFlight: boolean }>();
  readonly #tx = new Transactions();
  readonly #transmits: Transmit[] = [];
  readonly #events: TurnEvent[] = [];
  readonly #random: (buf: Uint8Array) => void;
  readonly #log: TargetLogger;
  readonly #view = new ChannelDataView();

  constructor(opts: TurnClientOptions, now: number) {
    if (opts.servers.length === 0) throw new Error("TurnClient needs at least one relay address");
    this.servers = opts.servers;
    this.#username = opts.username;
    this.#password = opts.password;
    this.#realm = opts.realm;
    this.#realmFixed = opts.realm !== undefined;
    this.#software = opts.software ?? C.SOFTWARE;
    this.#random = opts.random ?? ((b) => crypto.getRandomValues(b));
    this.#log = opts.log ?? silent;
    this.#start(now);
  }

  get state(): AllocationState {
    return this.#state;
  }
  /** The relay address in use (the first that answered), once one has. */
  get server(): Endpoint | undefined {
    return this.#server;
  }
  get relays(): readonly Endpoint[] {
    return this.#relays;
  }
  get srflx(): Endpoint | undefined {
    return this.#srflx;
  }
  /** When the allocation lapses unless refreshed (for the admin's relay view). */
  get expiresAt(): number | undefined {
    return this.#lifetime ? this.#lifetime.at + this.#lifetime.ms : undefined;
  }
  channels(): Iterable<Channel> {
    return this.#channels.values();
  }

  /** Starts over after a failure, with the same credentials (snownet `restart`). */
  restart(now: number): void {
    this.#invalidate("restarted");
    this.#tx.clear();
    this.#server = undefined;
    this.#nonce = undefined;
    this.#dual = true;
    this.#reallocations = 0;
    this.#start(now);
  }

  /** Replaces the credentials (the portal hands out new ones); takes effect at the next request. */
  setCredentials(username: string, password: string): void {
    this.#username = username;
    this.#password = password;
    this.#key = this.#realm !== undefined ? longTermKey(username, this.#realm, password) : undefined;
  }

  /**
   * A datagram from `from` that looks like STUN. Returns false when it is not this allocation's
   * business (another relay, or not from a relay at all), so the caller can offer it elsewhere.
   * `local`: the socket address it arrived on, when the shell knows it (a host candidate).
   */
  handleInput(buf: Uint8Array, length: number, from: Endpoint, now: number, local?: Endpoint): boolean {
    if (!this.#fromRelay(from)) return false;
    const msg = readStun(buf, length, this.drops);
    if (!msg) return true;
    if (msg.cls === StunClass.indication && msg.method === StunMethod.data) {
      const peer = msg.xorPeerAddresses[0];
      if (peer && msg.data) this.#events.push({ type: "data", peer, data: msg.data });
      else this.drops.count("unexpected_message");
      return true;
    }
    if (msg.cls === StunClass.request || msg.cls === StunClass.indication) {
      this.drops.count("unexpected_message");
      return true;
    }
    const tid = msg.tid;
    const p = this.#tx.get(tid);
    if (!p) {
      this.drops.count("unknown_transaction");
      return true;
    }
    // An answer to an authenticated request must be authentic: success always carries the MAC;
    // errors carry it when the relay could compute it (not for 401/438, which set the nonce).
    if (p.authenticated && this.#key && (msg.cls === StunClass.success || msg.integrityAt >= 0) && checkIntegrity(msg, this.#key) !== "ok") {
      this.drops.count("integrity"); // and keep waiting for the real answer
      this.#log.warn("response failed the integrity check", { tid, server: this.#fmtServer() });
      return true;
    }
    this.#tx.take(tid);
    if (local && (!this.#host || !sameEndpoint(this.#host, local))) {
      this.#host = local;
      this.#events.push({ type: "host_candidate", address: local });
    }
    if (this.#log.enabled("debug")) this.#log.debug("response", { tid, method: methodName(p.method), code: msg.errorCode?.code, rtt_ms: now - p.firstSentAt });
    if (msg.cls === StunClass.error) this.#onError(p, msg, now);
    else this.#onSuccess(p, msg, now);
    return true;
  }

  /**
   * ChannelData from the relay in `buf[0, length)`. Returns the channel (its `peer` is the
   * sender) with the payload at `buf[CHANNEL_DATA_HEADER, CHANNEL_DATA_HEADER + channelDataLength(buf))`,
   * or undefined (counted) when it is not for a bound channel. Nothing is allocated.
   */
  decapsulate(buf: Uint8Array, length: number, from: Endpoint, now: number): Channel | undefined {
    if (!this.#server || !sameEndpoint(this.#server, from) || !looksLikeChannelData(buf, length)) return undefined;
    const err = this.#view.parse(buf, length);
    if (err) {
      this.drops.count(err);
      return undefined;
    }
    const c = this.#channels.byNumber(this.#view.channel);
    if (!c) {
      this.drops.count("unknown_channel");
      return undefined;
    }
    if (!c.bound || now >= c.boundAt + C.CHANNEL_LIFETIME_MS) {
      this.drops.count("channel_not_bound");
      return undefined;
    }
    c.receivedSinceBind = true;
    c.receivedBytes += this.#view.dataLength;
    this.relayedBytesReceived += this.#view.dataLength;
    return c;
  }

  /**
   * Frames `buf[CHANNEL_DATA_HEADER, CHANNEL_DATA_HEADER + dataLength)` for the channel to
   * `channel.peer`; returns the datagram's length, to send to `server`, or -1 (counted) when
   * there is no allocation to send through. A handle that lapsed (idle 10 min) or belongs to an
   * allocation since replaced still works: the peer gets a fresh binding and the data goes out
   * on it right away, as on any channel being bound.
   */
  encapsulate(buf: Uint8Array, dataLength: number, channel: Channel, now: number): number {
    let c: Channel | undefined = channel;
    if (!c.usable(now) || this.#channels.byNumber(c.number) !== c) c = this.#state === "allocated" ? this.bindChannel(channel.peer, now) : undefined;
    if (!c || !c.usable(now) || !this.#server) {
      this.drops.count("no_channel");
      return -1;
    }
    c.sentBytes += dataLength;
    this.relayedBytesSent += dataLength;
    // Relayed data keeps the NAT mapping towards the relay open just as a binding would.
    this.#nextBindingAt = now + C.BINDING_INTERVAL_MS;
    return writeChannelDataHeader(buf, c.number, dataLength);
  }

  /**
   * The channel to `peer`, binding one if there is none (or only a lapsed one). Before the
   * allocation exists the binding waits for it. Undefined when the allocation cannot reach that
   * address family, or all 4096 numbers are taken.
   */
  bindChannel(peer: Endpoint, now: number): Channel | undefined {
    if (this.#state === "failed" || this.#state === "freeing" || this.#state === "freed") return undefined;
    const existing = this.#channels.forPeer(peer, now);
    if (existing && (existing.binding || existing.usable(now))) return existing;
    if (this.#state === "allocated" && !this.#canRelayTo(peer.address)) {
      this.#log.debug("allocation cannot relay to this address family", { peer: formatEndpoint(peer) });
      return undefined;
    }
    // A lapsed channel to the same peer: re-bound under its own number (RFC 8656 §12 allows the same pair).
    const c = existing ?? this.#channels.open(peer, now);
    if (!c) {
      this.#log.warn("all channel numbers in use", { peer: formatEndpoint(peer) });
      return undefined;
    }
    if (this.#state === "allocated") this.#sendChannelBind(c, now);
    return c;
  }

  /** Asks for (and keeps refreshing) a permission for `address` (RFC 8656 §9). */
  createPermission(address: string, now: number): void {
    if (this.#permissions.has(address)) return;
    this.#permissions.set(address, { installedAt: undefined, inFlight: false });
    if (this.#state === "allocated") this.#sendPermission(address, now);
  }

  removePermission(address: string): void {
    this.#permissions.delete(address); // the relay lets it lapse in 5 minutes
  }

  /** Deletes the allocation (Refresh with LIFETIME 0); `freed` follows its answer or its timeout. */
  free(now: number): void {
    if (this.#state === "freed" || this.#state === "freeing") return;
    const had = this.#state === "allocated";
    this.#invalidate("freed");
    this.#tx.clear();
    if (had && this.#server) {
      this.#state = "freeing";
      this.#send({ kind: "refresh", lifetimeS: 0 }, this.#server, now);
    } else {
      this.#state = "freed";
      this.#events.push({ type: "freed" });
    }
  }

  handleTimeout(now: number): void {
    const expires = this.expiresAt;
    if (expires !== undefined && now >= expires) {
      this.#log.warn("allocation expired", { server: this.#fmtServer() });
      this.#invalidate("expired");
      this.#tx.drop((p) => p.purpose.kind !== "binding");
      this.#allocate(now);
    }
    this.#tx.due(now, (p) => this.#transmits.push({ data: p.bytes, to: p.to }), (p) => this.#onGiveUp(p, now));
    if (this.#state !== "allocated") return;
    const refreshAt = this.#refreshAt();
    if (refreshAt !== undefined && now >= refreshAt) {
      this.#log.debug("refreshing allocation", { server: this.#fmtServer() });
      this.#send({ kind: "refresh" }, this.#server!, now);
    }
    if (now >= this.#nextBindingAt) {
      this.#nextBindingAt = now + C.BINDING_INTERVAL_MS;
      this.#send({ kind: "binding", keepalive: true }, this.#server!, now);
    }
    for (const c of [...this.#channels.values()]) {
      const at = c.refreshAt();
      if (at !== undefined && now >= at) this.#sendChannelBind(c, now);
      else if (!c.binding && now >= c.reusableAt()) this.#channels.remove(c);
    }
    for (const [address, p] of this.#permissions) {
      if (!p.inFlight && p.installedAt !== undefined && now >= p.installedAt + C.PERMISSION_REFRESH_AFTER_MS) this.#sendPermission(address, now);
    }
  }

  pollTransmit(): Transmit | undefined {
    return this.#transmits.shift();
  }

  pollEvent(): TurnEvent | undefined {
    return this.#events.shift();
  }

  pollTimeout(): number | undefined {
    let t = this.#tx.nextTimeout();
    const min = (x: number | undefined) => {
      if (x !== undefined && (t === undefined || x < t)) t = x;
    };
    if (this.#state === "allocated") {
      min(this.#refreshAt());
      min(this.expiresAt);
      min(this.#nextBindingAt);
      for (const c of this.#channels.values()) min(c.refreshAt());
      for (const p of this.#permissions.values()) if (!p.inFlight && p.installedAt !== undefined) min(p.installedAt + C.PERMISSION_REFRESH_AFTER_MS);
    }
    return t;
  }

  // ---- requests ------------------------------------------------------------------------------

  #start(now: number): void {
    this.#state = "binding";
    for (const s of this.servers) this.#send({ kind: "binding", keepalive: false }, s, now);
  }

  #allocate(now: number): void {
    if (++this.#reallocations > C.MAX_REALLOCATIONS) {
      this.#fail("rejected", `relay refused ${C.MAX_REALLOCATIONS} allocations in a row`);
      return;
    }
    this.#state = "allocating";
    this.#send({ kind: "allocate", dual: this.#dual }, this.#server!, now);
  }

  #sendChannelBind(c: Channel, now: number): void {
    c.binding = true;
    c.requestedAt = now;
    this.#send({ kind: "channel_bind", channel: c }, this.#server!, now);
  }

  #sendPermission(address: string, now: number): void {
    const p = this.#permissions.get(address);
    if (p) p.inFlight = true;
    this.#send({ kind: "permission", address }, this.#server!, now);
  }

  /** Builds and queues a request; authenticated when it is not a binding and we have a nonce. */
  #send(purpose: RequestPurpose, to: Endpoint, now: number, reauths = 0): void {
    const tid = new Uint8Array(TRANSACTION_ID_SIZE);
    this.#random(tid);
    const method = methodOf(purpose);
    const w = new StunWriter(method, StunClass.request, tid);
    switch (purpose.kind) {
      case "allocate":
        w.u8(Attr.REQUESTED_TRANSPORT, TRANSPORT_UDP);
        if (purpose.dual) w.u8(Attr.ADDITIONAL_ADDRESS_FAMILY, FAMILY_V6);
        break;
      case "refresh":
        if (purpose.lifetimeS !== undefined) w.u32(Attr.LIFETIME, purpose.lifetimeS);
        break;
      case "channel_bind":
        w.channelNumber(purpose.channel.number).address(Attr.XOR_PEER_ADDRESS, purpose.channel.peer);
        break;
      case "permission":
        w.address(Attr.XOR_PEER_ADDRESS, { address: purpose.address, port: 0 });
        break;
    }
    w.text(Attr.SOFTWARE, this.#software);
    const authenticated = purpose.kind !== "binding" && this.#nonce !== undefined && this.#key !== undefined;
    if (authenticated) {
      w.text(Attr.USERNAME, this.#username).text(Attr.REALM, this.#realm!).text(Attr.NONCE, this.#nonce!).integrity(this.#key!);
    }
    const bytes = w.finish();
    this.#tx.add({ tid: transactionKey(tid), method, purpose, to, bytes, authenticated, reauths }, now);
    this.#transmits.push({ data: bytes, to });
  }

  // ---- answers -------------------------------------------------------------------------------

  #onSuccess(p: PendingRequest, msg: StunMessage, now: number): void {
    const purpose = p.purpose;
    switch (purpose.kind) {
      case "binding": {
        this.#observeSrflx(msg);
        if (this.#server) return; // keepalive, or the second family of a dual-stack relay
        this.#server = p.to;
        this.#tx.drop((q) => q.purpose.kind === "binding"); // the other family's binding: no longer needed
        this.#log.debug("relay answered, allocating", { server: formatEndpoint(p.to) });
        this.#allocate(now);
        return;
      }
      case "allocate": {
        if (msg.lifetime === undefined || msg.xorRelayedAddresses.length === 0) {
          this.#fail("protocol", "allocate success without LIFETIME or XOR-RELAYED-ADDRESS");
          return;
        }
        this.#observeSrflx(msg);
        if (msg.addressErrorCode) {
          this.#log.info("relay refused one address family", { family: msg.addressErrorCode.family === FAMILY_V6 ? "ipv6" : "ipv4", code: msg.addressErrorCode.code, reason: msg.addressErrorCode.reason });
        }
        this.#relays = msg.xorRelayedAddresses;
        this.#lifetime = { at: now, ms: msg.lifetime * 1000 };
        this.#state = "allocated";
        this.#nextBindingAt = now + C.BINDING_INTERVAL_MS;
        this.#events.push({ type: "allocated", relays: this.#relays, srflx: this.#srflx, lifetimeS: msg.lifetime });
        this.#log.info("allocated", { server: this.#fmtServer(), relays: this.#relays.map(formatEndpoint).join(" "), srflx: this.#srflx && formatEndpoint(this.#srflx), lifetime_s: msg.lifetime });
        // What was asked for before the allocation existed.
        for (const c of [...this.#channels.values()]) {
          if (!c.binding && !c.bound) {
            if (this.#canRelayTo(c.peer.address)) this.#sendChannelBind(c, now);
            else this.#channels.remove(c);
          }
        }
        for (const [address, perm] of this.#permissions) if (!perm.inFlight && perm.installedAt === undefined) this.#sendPermission(address, now);
        return;
      }
      case "refresh": {
        if (this.#state === "freeing") {
          this.#freed();
          return;
        }
        if (this.#reallocateAfterDelete) {
          this.#reallocateAfterDelete = false;
          this.#allocate(now);
          return;
        }
        if (!msg.lifetime) {
          // Lifetime 0 (or none): the relay no longer holds it; make a new one.
          this.#invalidate("refresh answered with no lifetime");
          this.#allocate(now);
          return;
        }
        this.#lifetime = { at: now, ms: msg.lifetime * 1000 };
        this.#reallocations = 0; // this allocation held: the next trouble starts a fresh count
        return;
      }
      case "channel_bind": {
        const c = purpose.channel;
        const first = !c.bound;
        c.bound = true;
        c.binding = false;
        c.boundAt = now;
        c.receivedSinceBind = false;
        if (first) this.#events.push({ type: "channel_bound", peer: c.peer, channel: c.number });
        this.#log.debug(first ? "channel bound" : "channel refreshed", { channel: c.number, peer: formatEndpoint(c.peer) });
        return;
      }
      case "permission": {
        const perm = this.#permissions.get(purpose.address);
        if (perm) {
          perm.inFlight = false;
          perm.installedAt = now;
        }
        return;
      }
    }
  }

  #onError(p: PendingRequest, msg: StunMessage, now: number): void {
    const code = msg.errorCode?.code ?? 0;
    const detail = `${code} ${msg.errorCode?.reason ?? ""}`.trim();
    const purpose = p.purpose;
    if (this.#state === "freeing") {
      this.#freed();
      return;
    }
    if (code === C.ERR_UNAUTHORIZED || code === C.ERR_STALE_NONCE) {
      if (code === C.ERR_UNAUTHORIZED && p.authenticated) {
        this.#fail("auth", `relay refused the credentials for ${this.#username} (${detail})`);
        return;
      }
      if (msg.realm !== undefined && this.#realmFixed && msg.realm !== this.#realm) {
        this.#fail("realm_mismatch", `relay realm "${msg.realm}", expected "${this.#realm}"`);
        return;
      }
      const realm = msg.realm ?? this.#realm;
      if (msg.nonce === undefined || realm === undefined) {
        this.#fail("protocol", `${detail} without NONCE or REALM`);
        return;
      }
      if (p.reauths >= C.MAX_REAUTH) {
        this.#fail("auth", `relay keeps rejecting fresh nonces (${detail})`);
        return;
      }
      this.#nonce = msg.nonce;
      if (realm !== this.#realm || this.#key === undefined) {
        this.#realm = realm;
        this.#key = longTermKey(this.#username, realm, this.#password);
      }
      this.#log.debug("authenticating", { method: methodName(p.method), code });
      this.#send(purpose, p.to, now, p.reauths + 1);
      return;
    }
    if (code === C.ERR_WRONG_CREDENTIALS) {
      this.#fail("auth", `relay refused the credentials for ${this.#username} (${detail})`);
      return;
    }
    if (code === C.ERR_ALLOCATION_MISMATCH) {
      // The relay and we disagree on whether an allocation exists. Resynchronise (snownet): an
      // Allocate refused because one exists deletes it first; anything else allocates anew.
      this.#invalidate(`allocation mismatch (${detail})`);
      this.#tx.drop((q) => q.purpose.kind !== "binding");
      if (purpose.kind === "allocate") {
        this.#reallocateAfterDelete = true;
        this.#state = "allocating";
        this.#send({ kind: "refresh", lifetimeS: 0 }, p.to, now);
      } else {
        if (purpose.kind === "channel_bind") this.bindChannel(purpose.channel.peer, now);
        this.#allocate(now);
      }
      return;
    }
    if (code === C.ERR_UNKNOWN_ATTRIBUTE) {
      this.#fail("protocol", `relay does not understand ${(msg.unknownAttributes ?? []).map((a) => `0x${a.toString(16)}`).join(", ")} in ${methodName(p.method)}`);
      return;
    }
    switch (purpose.kind) {
      case "allocate":
        if (code === C.ERR_ADDRESS_FAMILY && purpose.dual) {
          // The relay cannot do both families at once: take what it can (IPv4, the family asked first).
          this.#log.info("relay refused a dual-stack allocation, retrying with IPv4 only", { detail });
          this.#dual = false;
          this.#send({ kind: "allocate", dual: false }, p.to, now, p.reauths);
          return;
        }
        this.#fail(code === C.ERR_UNSUPPORTED_TRANSPORT ? "unsupported_transport" : code === C.ERR_ALLOCATION_QUOTA ? "quota" : code === C.ERR_INSUFFICIENT_CAPACITY ? "insufficient_capacity" : "rejected", `allocate refused: ${detail}`);
        return;
      case "refresh":
        if (this.#reallocateAfterDelete) {
          this.#reallocateAfterDelete = false;
          this.#allocate(now);
          return;
        }
        this.#invalidate(`refresh refused: ${detail}`);
        this.#allocate(now);
        return;
      case "channel_bind":
        purpose.channel.binding = false;
        this.#channels.remove(purpose.channel);
        this.#events.push({ type: "channel_failed", peer: purpose.channel.peer, channel: purpose.channel.number, detail });
        this.#log.warn("channel bind refused", { channel: purpose.channel.number, peer: formatEndpoint(purpose.channel.peer), detail });
        return;
      case "permission":
        this.#permissions.delete(purpose.address);
        this.#events.push({ type: "permission_failed", address: purpose.address, detail });
        this.#log.warn("permission refused", { peer: purpose.address, detail });
        return;
      case "binding":
        this.#log.debug("binding refused", { detail });
        return;
    }
  }

  #onGiveUp(p: PendingRequest, now: number): void {
    const purpose = p.purpose;
    const silence = `no answer from ${formatEndpoint(p.to)} to ${methodName(p.method)} within ${C.REQUEST_MAX_ELAPSED_MS / 1000} s`;
    switch (purpose.kind) {
      case "binding":
        if (purpose.keepalive) this.#fail("timeout", `${silence}: relay unreachable`);
        else if (!this.#server && !this.#tx.some((q) => q.purpose.kind === "binding")) this.#fail("no_response", `${silence} — is UDP to the relay blocked?`);
        return;
      case "allocate":
      case "refresh":
        if (this.#state === "freeing") this.#freed();
        else this.#fail("timeout", silence);
        return;
      case "channel_bind":
        purpose.channel.binding = false;
        if (!purpose.channel.bound) this.#channels.remove(purpose.channel);
        this.#events.push({ type: "channel_failed", peer: purpose.channel.peer, channel: purpose.channel.number, detail: silence });
        return;
      case "permission": {
        const perm = this.#permissions.get(purpose.address);
        if (perm) perm.inFlight = false;
        this.#events.push({ type: "permission_failed", address: purpose.address, detail: silence });
        return;
      }
    }
  }

  // ---- state ---------------------------------------------------------------------------------

  #observeSrflx(msg: StunMessage): void {
    const mapped = msg.xorMappedAddress;
    if (!mapped || (this.#srflx && sameEndpoint(this.#srflx, mapped))) return;
    // A changed mapping is a new candidate; the old one is not invalidated (snownet: roaming
    // guesses must not cause false disconnects — ICE finds out whether it still works).
    this.#srflx = mapped;
    this.#events.push({ type: "srflx_candidate", address: mapped });
  }

  #invalidate(reason: string): void {
    if (this.#relays.length > 0) {
      this.#events.push({ type: "candidates_invalidated", relays: this.#relays, reason });
      this.#log.info("allocation invalidated", { server: this.#fmtServer(), reason });
    }
    this.#relays = [];
    this.#lifetime = undefined;
    this.#nextBindingAt = Infinity;
    for (const c of this.#channels.values()) c.bound = c.binding = false; // handles the caller holds stop working
    this.#channels.clear();
    for (const p of this.#permissions.values()) {
      p.installedAt = undefined;
      p.inFlight = false;
    }
  }

  #fail(reason: AllocationFailure, detail: string): void {
    this.#invalidate(reason);
    this.#tx.clear();
    this.#state = "failed";
    this.failures.count(reason);
    this.#events.push({ type: "failed", reason, detail });
    this.#log.warn("allocation failed", { server: this.#fmtServer(), reason, detail });
  }

  #freed(): void {
    this.#tx.clear();
    this.#state = "freed";
    this.#events.push({ type: "freed" });
    this.#log.info("allocation freed", { server: this.#fmtServer() });
  }

  #refreshAt(): number | undefined {
    if (!this.#lifetime || this.#tx.some((p) => p.purpose.kind === "refresh")) return undefined;
    return this.#lifetime.at + this.#lifetime.ms * C.ALLOCATION_REFRESH_FRACTION;
  }

  #canRelayTo(address: string): boolean {
    const v6 = address.includes(":");
    return this.#relays.some((r) => r.address.includes(":") === v6);
  }

  #fromRelay(from: Endpoint): boolean {
    return this.#server ? sameEndpoint(this.#server, from) : this.servers.some((s) => sameEndpoint(s, from));
  }

  #fmtServer(): string {
    return formatEndpoint(this.#server ?? this.servers[0]!);
  }
}

/** The payload length of a ChannelData message `decapsulate` accepted. */
export function channelDataLength(buf: Uint8Array): number {
  return (buf[2]! << 8) | buf[3]!;
}
export { CHANNEL_DATA_HEADER };
export { ALLOCATION_FAILURES, type AllocationFailure, type AllocationState, type TurnClientOptions, type TurnDropReason, type TurnEvent } from "./turn-events.ts";

function methodOf(p: RequestPurpose): number {
  switch (p.kind) {
    case "binding": return StunMethod.binding;
    case "allocate": return StunMethod.allocate;
    case "refresh": return StunMethod.refresh;
    case "channel_bind": return StunMethod.channelBind;
    case "permission": return StunMethod.createPermission;
  }
}

function methodName(m: number): string {
  for (const k in StunMethod) if (StunMethod[k as keyof typeof StunMethod] === m) return k;
  return `0x${m.toString(16)}`;
}
