// The connection manager for clients that reach the gateway through ICE (portal mode), as
// Firezone's snownet runs it on the gateway side:
// - one IceAgent (controlled) and one tunnel peer per client id; `upsertClient` keeps both when ICE
//   credentials, remote key and preshared key are unchanged, and otherwise replaces them with a new
//   connection index (the old sessions cannot be trusted to match what the client now holds);
// - an unchanged upsert (the client asked again, e.g. after a portal reconnect) rolls the WireGuard
//   session over, but at most once per 20 s (Firezone #10102: a flapping portal must not cause a
//   handshake storm);
// - nothing here reacts to the control plane going away (#10040): connections live until their ICE
//   fails or removeClient says so;
// - local candidates are the same for every client: host addresses (the shell says which), and
//   srflx + relay from each TURN allocation, added to every agent and signalled as
//   `local_candidates` events.
// - an ICE connection that failed stays (its `ice` state event says so) until the portal removes
//   it or upserts it anew: the portal owns the connection's life, ICE only its path;
// - pollTimeout scans every agent: O(clients) per event-loop turn, fine for hundreds of clients.
// The data path (gateway-node.ts) reads `route`/`channel` per packet; everything here is control path.
import { IceAgent, type IceCredentials, type IceEvent, type IceRoute } from "../ice/agent.ts";
import { formatCandidate, localCandidate, type Candidate } from "../ice/candidate.ts";
import type { Channel } from "../ice/turn-channels.ts";
import { CHANNEL_DATA_HEADER } from "../ice/channel-data.ts";
import type { TurnEvent } from "../ice/turn-client.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import type { Cidr } from "../ip/address.ts";
import type { Tunnel, Connection } from "../tunnel/index.ts";
import type { Endpoint, Transmit } from "../wire/index.ts";
import { Relays, relayIdOf, relayKey, type Relay, type RelaySpec } from "./relays.ts";

/** Firezone #10102: an unchanged upsert rolls the session over at most this often. */
export const ROLLOVER_DEBOUNCE_MS = 20_000;

export interface ClientSpec {
  clientId: string;
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  localIce: IceCredentials;
  remoteIce: IceCredentials;
  /** The client's tunnel addresses (its AllowedIPs): the portal names them with the client. */
  allowedIPs?: Cidr[];
}

export type IceNodeEvent =
  | { type: "local_candidates"; clientId: string; candidates: string[] }
  | { type: "invalidated_candidates"; clientId: string; candidates: string[] }
  /** An ICE timeline event of one connection (candidates, pair states, nomination, state). */
  | { type: "ice"; cid: number; clientId: string; event: IceEvent }
  /** The data path moved: `path` as the admin shows it (`direct host`, `srflx`, `relay via …`), or undefined when none. */
  | { type: "ice_path"; cid: number; clientId: string; path: string | undefined; route: IceRoute | undefined }
  | { type: "relay"; relayId: string; event: TurnEvent };

export function isIceEvent(e: { type: string }): e is IceNodeEvent {
  return e.type === "ice" || e.type === "ice_path" || e.type === "relay" || e.type === "local_candidates" || e.type === "invalidated_candidates";
}

export interface IceConnection {
  readonly clientId: string;
  readonly cid: number;
  readonly conn: Connection;
  readonly agent: IceAgent;
  spec: ClientSpec;
  /** The selected pair as last applied to the tunnel peer. */
  route: IceRoute | undefined;
  /** Relayed route: the allocation and channel the data path frames with. */
  relay: Relay | undefined;
  channel: Channel | undefined;
  lastRolloverAt: number;
}

interface LocalEntry {
  candidate: Candidate;
  relay?: string;
}

export class IceConnections {
  readonly relays: Relays;
  readonly #byClient = new Map<string, IceConnection>();
  readonly #byCid = new Map<number, IceConnection>();
  readonly #byUfrag = new Map<string, IceConnection>();
  /** Connections whose route goes through a relay: the data path frames their packets. */
  relayed: IceConnection[] = [];
  #locals: LocalEntry[] = [];
  #hosts: Endpoint[] = [];
  #events: IceNodeEvent[] = [];
  #transmits: Transmit[] = [];
  #now = 0;

  constructor(
    private readonly tunnel: Tunnel,
    private readonly log?: TargetLogger,
    turnLog?: TargetLogger,
  ) {
    this.relays = new Relays(turnLog);
  }

  get size(): number {
    return this.#byClient.size;
  }

  byCid(cid: number): IceConnection | undefined {
    return this.#byCid.get(cid);
  }

  byClient(clientId: string): IceConnection | undefined {
    return this.#byClient.get(clientId);
  }

  byUfrag(ufrag: string): IceConnection | undefined {
    return this.#byUfrag.get(ufrag);
  }

  all(): IterableIterator<IceConnection> {
    return this.#byClient.values();
  }

  // ───────────────────────────── the API the portal drives ─────────────────────────────

  /** The socket's addresses (host candidates), as the shell finds them; replaces the previous set. */
  setHostAddresses(hosts: Endpoint[], now: number): void {
    this.#now = now;
    const gone = this.#locals.filter((l) => l.candidate.type === "host" && !hosts.some((h) => h.address === l.candidate.address && h.port === l.candidate.port));
    for (const g of gone) this.#invalidateLocal(g, now);
    this.#hosts = hosts;
    const added: LocalEntry[] = [];
    for (const h of hosts) {
      if (this.#locals.some((l) => l.candidate.type === "host" && l.candidate.address === h.address && l.candidate.port === h.port)) continue;
      added.push(this.#addLocal({ candidate: localCandidate("host", h.address, h.port) }, now));
    }
    this.#signal(added);
  }

  get hosts(): readonly Endpoint[] {
    return this.#hosts;
  }

  upsert(spec: ClientSpec, now: number): { cid: number; replaced: boolean } {
    this.#now = now;
    const known = this.#byClient.get(spec.clientId);
    if (known && sameCredentials(known.spec, spec)) {
      known.spec = spec;
      if (spec.allowedIPs) this.tunnel.upsertPeer({ publicKey: spec.publicKey, presharedKey: spec.presharedKey, allowedIPs: spec.allowedIPs });
      if (now - known.lastRolloverAt >= ROLLOVER_DEBOUNCE_MS && known.conn.peer.endpoint !== undefined) {
        known.lastRolloverAt = now;
        known.conn.peer.connect(now);
        this.tunnel.touch(known.cid);
        this.log?.info("session rollover on upsert", { cid: known.cid, client: spec.clientId });
      }
      // The client may have lost what we signalled (it asked again): signal it again.
      this.#events.push({ type: "local_candidates", clientId: spec.clientId, candidates: known.agent.signalledCandidates() });
      return { cid: known.cid, replaced: false };
    }
    if (known) this.#drop(known, now, false);
    // A key another client id held (the portal re-keyed the client under a new id) is replaced too.
    const conn = this.tunnel.upsertPeer({ publicKey: spec.publicKey, presharedKey: spec.presharedKey, allowedIPs: spec.allowedIPs ?? [] });
    const stale = this.#byCid.get(conn.cid);
    if (stale) this.#forget(stale);
    const agent = new IceAgent({ local: spec.localIce, remote: spec.remoteIce, now, log: this.log, cid: String(conn.cid) });
    const ic: IceConnection = { clientId: spec.clientId, cid: conn.cid, conn, agent, spec, route: undefined, relay: undefined, channel: undefined, lastRolloverAt: now };
    this.#byClient.set(spec.clientId, ic);
    this.#byCid.set(conn.cid, ic);
    this.#byUfrag.set(spec.localIce.ufrag, ic);
    for (const l of this.#locals) agent.addLocalCandidate(l.candidate, now, l.relay);
    this.log?.info("ice connection created", { cid: conn.cid, client: spec.clientId, replaced: known !== undefined, local_ufrag: spec.localIce.ufrag });
    this.#events.push({ type: "local_candidates", clientId: spec.clientId, candidates: agent.signalledCandidates() });
    this.#pump(ic, now);
    return { cid: conn.cid, replaced: known !== undefined };
  }

  addRemoteCandidates(clientId: string, sdps: string[], now: number): void {
    this.#now = now;
    const ic = this.#byClient.get(clientId);
    if (!ic) return void this.log?.warn("candidates for an unknown client", { client: clientId, count: sdps.length });
    for (const s of sdps) ic.agent.addRemoteCandidateText(s, now);
    this.#pump(ic, now);
  }

  removeRemoteCandidates(clientId: string, sdps: string[], now: number): void {
    this.#now = now;
    const ic = this.#byClient.get(clientId);
    if (!ic) return;
    for (const s of sdps) ic.agent.invalidateRemoteCandidateText(s, now);
    this.#pump(ic, now);
  }

  /** Goodbye first (so the client starts over at once instead of timing out), then gone. */
  remove(clientId: string, now: number): void {
    this.#now = now;
    const ic = this.#byClient.get(clientId);
    if (ic) this.#drop(ic, now, true);
  }

  #drop(ic: IceConnection, now: number, goodbye: boolean): void {
    if (goodbye && this.tunnel.goodbyeTo(ic.cid, now)) {
      // Queued on the tunnel; taken now, while the route that frames it is still known.
      for (let t = this.tunnel.pollTransmit(); t; t = this.tunnel.pollTransmit()) this.#transmits.push(this.frame(t, now));
    }
    this.tunnel.removePeer(ic.spec.publicKey);
    this.#forget(ic);
    this.log?.info("ice connection removed", { cid: ic.cid, client: ic.clientId });
  }

  #forget(ic: IceConnection): void {
    if (this.#byClient.get(ic.clientId) === ic) this.#byClient.delete(ic.clientId);
    if (this.#byCid.get(ic.cid) === ic) this.#byCid.delete(ic.cid);
    if (this.#byUfrag.get(ic.spec.localIce.ufrag) === ic) this.#byUfrag.delete(ic.spec.localIce.ufrag);
    this.relayed = this.relayed.filter((r) => r !== ic);
  }

  setRelays(specs: RelaySpec[], now: number): void {
    this.#now = now;
    this.relays.set(specs, now);
    this.#pumpRelays(now);
  }

  removeRelays(ids: string[], now: number): void {
    this.#now = now;
    for (const r of this.relays.remove(ids, now)) this.#invalidateRelay(r, now);
    this.#pumpRelays(now);
  }

  // ───────────────────────────── local candidates ─────────────────────────────

  #addLocal(entry: LocalEntry, now: number): LocalEntry {
    this.#locals.push(entry);
    for (const ic of this.#byClient.values()) {
      ic.agent.addLocalCandidate(entry.candidate, now, entry.relay);
      this.#pump(ic, now);
    }
    return entry;
  }

  #invalidateLocal(entry: LocalEntry, now: number): void {
    this.#locals = this.#locals.filter((l) => l !== entry);
    const text = formatCandidate(entry.candidate);
    for (const ic of this.#byClient.values()) {
      ic.agent.invalidateLocalCandidate(entry.candidate, now);
      this.#events.push({ type: "invalidated_candidates", clientId: ic.clientId, candidates: [text] });
      this.#pump(ic, now);
    }
  }

  #signal(added: LocalEntry[]): void {
    if (added.length === 0) return;
    const texts = added.filter((a) => a.candidate.type !== "prflx").map((a) => formatCandidate(a.candidate));
    for (const ic of this.#byClient.values()) this.#events.push({ type: "local_candidates", clientId: ic.clientId, candidates: texts });
  }

  #invalidateRelay(r: Relay, now: number): void {
    for (const l of this.#locals.filter((l) => l.relay !== undefined && relayIdOf(l.relay) === r.id)) this.#invalidateLocal(l, now);
  }

  /** A TURN event: new srflx / relay candidates for every connection, or lost ones. */
  #onTurnEvent(r: Relay, e: TurnEvent, now: number): void {
    this.#events.push({ type: "relay", relayId: r.id, event: e });
    if (r.removing) return;
    if (e.type === "srflx_candidate") {
      // Checked from its host base (the one socket): signalled only if we have a host of its family.
      const base = this.#hosts.find((h) => h.address.includes(":") === e.address.address.includes(":"));
      if (!base) return;
      if (this.#locals.some((l) => l.candidate.type === "srflx" && l.candidate.address === e.address.address && l.candidate.port === e.address.port)) return;
      this.#signal([this.#addLocal({ candidate: localCandidate("srflx", e.address.address, e.address.port, base) }, now)]);
    } else if (e.type === "allocated") {
      const added: LocalEntry[] = [];
      for (const a of e.relays) {
        if (this.#locals.some((l) => l.candidate.type === "relay" && l.candidate.address === a.address && l.candidate.port === a.port)) continue;
        const base = e.srflx ?? a;
        added.push(this.#addLocal({ candidate: localCandidate("relay", a.address, a.port, base), relay: relayKey(r.id, a) }, now));
      }
      this.#signal(added);
    } else if (e.type === "candidates_invalidated") {
      for (const l of this.#locals.filter((l) => l.candidate.type === "relay" && e.relays.some((a) => a.address === l.candidate.address && a.port === l.candidate.port))) this.#invalidateLocal(l, now);
    }
  }

  // ───────────────────────────── outputs and timers ─────────────────────────────

  /** Moves an agent's transmits into the queue and its events out, and applies a changed route. */
  #pump(ic: IceConnection, now: number): void {
    for (let t = ic.agent.pollTransmit(); t; t = ic.agent.pollTransmit()) {
      if (t.relay === undefined) this.#transmits.push({ data: t.data, to: t.to });
      else this.#sendViaRelay(t.relay, t.to, t.data, now);
    }
    for (let e = ic.agent.pollEvent(); e; e = ic.agent.pollEvent()) {
      this.#events.push({ type: "ice", cid: ic.cid, clientId: ic.clientId, event: e });
    }
    if (ic.agent.route !== ic.route) this.#applyRoute(ic, ic.agent.route, now);
  }

  #applyRoute(ic: IceConnection, route: IceRoute | undefined, now: number): void {
    ic.route = route;
    ic.relay = undefined;
    ic.channel = undefined;
    if (route) {
      ic.conn.peer.setEndpoint(route.to);
      if (route.relay !== undefined) {
        const relay = this.relays.get(relayIdOf(route.relay));
        ic.relay = relay;
        ic.channel = relay?.turn.bindChannel(route.to, now);
        this.#pumpRelays(now);
      }
      this.tunnel.touch(ic.cid);
    }
    const wasRelayed = this.relayed.includes(ic);
    if (ic.channel && !wasRelayed) this.relayed = [...this.relayed, ic];
    else if (!ic.channel && wasRelayed) this.relayed = this.relayed.filter((r) => r !== ic);
    const path = this.pathOf(ic);
    this.log?.info("connection path changed", { cid: ic.cid, client: ic.clientId, path: path ?? "none", remote: route ? `${route.to.address}:${route.to.port}` : undefined });
    this.#events.push({ type: "ice_path", cid: ic.cid, clientId: ic.clientId, path, route });
  }

  /** How the admin names a connection's data path. */
  pathOf(ic: IceConnection): string | undefined {
    const sel = ic.agent.selected;
    if (!sel || !ic.route) return undefined;
    if (ic.route.relay !== undefined) return `relay via ${ic.relay?.turn.server ? `${ic.relay.turn.server.address}:${ic.relay.turn.server.port}` : relayIdOf(ic.route.relay)}`;
    const types = new Set([sel.local.type, sel.remote.type]);
    if (types.has("relay")) return "relay (client side)";
    if (types.has("srflx") || types.has("prflx")) return "srflx";
    return "direct host";
  }

  #sendViaRelay(key: string, to: Endpoint, data: Uint8Array, now: number): void {
    const r = this.relays.get(relayIdOf(key));
    const server = r?.turn.server;
    if (!r || !server) return;
    const ch = r.turn.bindChannel(to, now);
    if (!ch) return;
    const buf = new Uint8Array(CHANNEL_DATA_HEADER + data.length);
    buf.set(data, CHANNEL_DATA_HEADER);
    const n = r.turn.encapsulate(buf, data.length, ch, now);
    if (n > 0) this.#transmits.push({ data: buf.subarray(0, n), to: server });
    this.#pumpRelays(now);
  }

  /**
   * A tunnel transmit (handshake, keepalive, goodbye) toward a relayed connection goes inside
   * ChannelData to its relay; any other goes as it is. Control path: a scan of the relayed ones.
   */
  frame(t: Transmit, now: number): Transmit {
    for (const ic of this.relayed) {
      const r = ic.route;
      if (!r || r.to.port !== t.to.port || r.to.address !== t.to.address || !ic.relay || !ic.channel) continue;
      const server = ic.relay.turn.server;
      if (!server) return t;
      const buf = new Uint8Array(CHANNEL_DATA_HEADER + t.data.length);
      buf.set(t.data, CHANNEL_DATA_HEADER);
      const n = ic.relay.turn.encapsulate(buf, t.data.length, ic.channel, now);
      return n > 0 ? { data: buf.subarray(0, n), to: server } : t;
    }
    return t;
  }

  #pumpRelays(now: number): void {
    for (const r of this.relays.list) for (let t = r.turn.pollTransmit(); t; t = r.turn.pollTransmit()) this.#transmits.push(t);
    for (const { relay, event } of this.relays.events()) this.#onTurnEvent(relay, event, now);
    this.relays.sweep();
  }

  /** After the data path handed an agent a datagram: its answers and events. */
  afterInput(ic: IceConnection, now: number): void {
    this.#now = now;
    this.#pump(ic, now);
  }

  afterRelayInput(now: number): void {
    this.#now = now;
    this.#pumpRelays(now);
  }

  handleTimeout(now: number): void {
    this.#now = now;
    this.relays.handleTimeout(now);
    this.#pumpRelays(now);
    for (const ic of [...this.#byClient.values()]) {
      const t = ic.agent.pollTimeout();
      if (t !== undefined && t <= now) ic.agent.handleTimeout(now);
      this.#pump(ic, now);
    }
  }

  /** O(clients + relays): fine for the hundreds of clients a gateway serves; a heap when it is not. */
  pollTimeout(): number | undefined {
    let t = this.relays.pollTimeout();
    for (const ic of this.#byClient.values()) {
      const x = ic.agent.pollTimeout();
      if (x !== undefined && (t === undefined || x < t)) t = x;
    }
    return t;
  }

  pollTransmit(): Transmit | undefined {
    return this.#transmits.shift();
  }

  pollEvent(): IceNodeEvent | undefined {
    return this.#events.shift();
  }

  get now(): number {
    return this.#now;
  }

  /** Metrics: candidate pairs by state over every connection. */
  pairsByState(): Record<string, number> {
    const out: Record<string, number> = { waiting: 0, in_progress: 0, succeeded: 0, failed: 0 };
    for (const ic of this.#byClient.values()) for (const p of ic.agent.pairs()) out[p.state] = (out[p.state] ?? 0) + 1;
    return out;
  }
}

function sameCredentials(a: ClientSpec, b: ClientSpec): boolean {
  return (
    a.localIce.ufrag === b.localIce.ufrag && a.localIce.pwd === b.localIce.pwd &&
    a.remoteIce.ufrag === b.remoteIce.ufrag && a.remoteIce.pwd === b.remoteIce.pwd &&
    sameBytes(a.publicKey, b.publicKey) && sameBytes(a.presharedKey, b.presharedKey)
  );
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
