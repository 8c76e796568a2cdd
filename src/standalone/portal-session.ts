// What the portal's messages do to this gateway, without the socket: `init`, `authorize_flow`,
// `reject_access`, candidates, relays, resource and expiry updates map onto the node (clients,
// ICE, relays) and its access policy; what the gateway must say back (flow_authorized, candidates
// it gathered) comes out of pollSend(). Sans-IO: `now` comes in, so a test plays a portal session
// on a fake clock. State here (who is which cid, who may reach what) outlives the portal socket:
// a reconnect's `init` only trims authorizations the portal no longer lists (Firezone's
// `retain_authorizations`), it never starts over.
//
// Portal ids: a client's id (`client_id`) is a string from the portal; the data plane's `cid` is
// the node's number. Log lines and timeline entries carry both, plus the portal's resource id as `rid`.
import type { AccessPolicy, ExpiresAt } from "../gateway/index.ts";
import { parseCidr } from "../ip/address.ts";
import type { ClientSpec, RelaySpec } from "../node/index.ts";
import type { GatewayEgress, GatewayIngress } from "../portal/index.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import type { Endpoint } from "../wire/index.ts";

type Msg<E extends GatewayIngress["event"]> = Extract<GatewayIngress, { event: E }>["payload"];
export type PortalInterface = Msg<"init">["interface"];

export type { ClientSpec, RelaySpec };

/** The node's client-facing API (GatewayNode's, src/node/ice-connections.ts); a fake stands in for it in tests. */
export interface PortalNode {
  upsertClient(spec: ClientSpec, now: number): { cid: number; replaced: boolean };
  addRemoteCandidates(clientId: string, sdps: string[], now: number): void;
  removeRemoteCandidates(clientId: string, sdps: string[], now: number): void;
  /** Goodbye first, then gone. */
  removeClient(clientId: string, now: number): void;
  setRelays(relays: RelaySpec[], now: number): void;
  removeRelays(ids: string[], now: number): void;
}

/** Events of the node this session answers (the ICE agent's gathered and invalidated candidates). */
export type PortalNodeEvent = { type: "local_candidates"; clientId: string; candidates: string[] } | { type: "invalidated_candidates"; clientId: string; candidates: string[] };

/** One portal message that concerned a client, for the connection's timeline. */
export interface PortalTimelineEntry {
  at: number;
  event: string;
  rid?: string;
  detail?: string;
}

export interface PortalClientView {
  cid: number;
  client_id: string;
  /** The portal gives a client's name only in some messages; its id otherwise. */
  name: string | null;
  ipv4: string;
  ipv6: string;
  resources: { rid: string; expires_at: string | null }[];
}

/** Timeline entries kept per client: the latest ones (the page shows recent history). */
export const TIMELINE_PER_CLIENT = 64;

interface ClientState {
  clientId: string;
  cid: number;
  name: string | null;
  ipv4: string;
  ipv6: string;
  timeline: PortalTimelineEntry[];
}

export interface PortalSessionOptions {
  node: PortalNode;
  policy: AccessPolicy;
  log: TargetLogger;
  /** This gateway's id (FIREZONE_ID or the persisted one): on every line. */
  gid: string;
  /** Random bytes, for ICE credentials the deprecated `request_connection` leaves to us. */
  random: (n: number) => Uint8Array;
}

const toMs = (s: number | null | undefined): ExpiresAt => (s === null || s === undefined ? null : s * 1000);

export class PortalSession {
  readonly #o: PortalSessionOptions;
  readonly #clients = new Map<string, ClientState>();
  readonly #byCid = new Map<number, ClientState>();
  readonly #out: GatewayEgress[] = [];
  #interface: PortalInterface | undefined;
  #interfaceChanged = false;
  #inits = 0;

  constructor(o: PortalSessionOptions) {
    this.#o = o;
  }

  /** The addresses `init` gave this gateway (undefined before the first). */
  get interface(): PortalInterface | undefined {
    return this.#interface;
  }

  /** The interface from the last `init`, once per change: the shell configures the TUN with it. */
  pollInterfaceChange(): PortalInterface | undefined {
    if (!this.#interfaceChanged) return undefined;
    this.#interfaceChanged = false;
    return this.#interface;
  }

  pollSend(): GatewayEgress | undefined {
    return this.#out.shift();
  }

  handle(m: GatewayIngress, now: number): void {
    switch (m.event) {
      case "init":
        return this.#init(m.payload, now);
      case "authorize_flow": {
        const p = m.payload;
        const c = this.#upsert({ clientId: p.client.id, publicKey: p.client.public_key, presharedKey: p.client.preshared_key, localIce: p.gateway_ice_credentials, remoteIce: p.client_ice_credentials, ipv4: p.client.ipv4, ipv6: p.client.ipv6 }, now, "authorize_flow", p.resource.id);
        this.#grant(c, p.resource, toMs(p.expires_at), now, "authorize_flow");
        this.#out.push({ event: "flow_authorized", payload: { ref: p.ref } });
        return;
      }
      case "request_connection": {
        // Deprecated: the gateway picks its own ICE credentials and sends them back.
        const p = m.payload;
        const local = { username: b64url(this.#o.random(6)), password: b64url(this.#o.random(18)) };
        const c = this.#upsert({ clientId: p.client.id, publicKey: p.client.peer.public_key, presharedKey: p.client.peer.preshared_key, localIce: local, remoteIce: p.client.payload.ice_parameters, ipv4: p.client.peer.ipv4, ipv6: p.client.peer.ipv6 }, now, "request_connection", p.resource.id);
        this.#grant(c, p.resource, toMs(p.expires_at), now, "request_connection");
        this.#out.push({ event: "connection_ready", payload: { ref: p.ref, gateway_payload: { ConnectionAccepted: { ice_parameters: local } } } });
        return;
      }
      case "allow_access": {
        const p = m.payload;
        const c = this.#clients.get(p.client_id);
        if (!c) return this.#o.log.warn("portal allowed access for a client without a connection: ignored", { gid: this.#o.gid, client_id: p.client_id, rid: p.resource.id });
        this.#grant(c, p.resource, toMs(p.expires_at), now, "allow_access");
        return;
      }
      case "reject_access": {
        const { client_id, resource_id } = m.payload;
        const c = this.#clients.get(client_id);
        if (!c) return;
        this.#note(c, now, "reject_access", resource_id);
        if (this.#o.policy.revoke(c.cid, resource_id)) this.#o.log.info("authorization revoked by the portal", this.#fields(c, resource_id));
        this.#farewellIfEmpty(c, now);
        return;
      }
      case "access_authorization_expiry_updated": {
        const { client_id, resource_id, expires_at } = m.payload;
        const c = this.#clients.get(client_id);
        if (!c) return;
        this.#note(c, now, "access_authorization_expiry_updated", resource_id, `expires ${new Date(expires_at * 1000).toISOString()}`);
        // Only an authorization that still exists moves: the portal cannot grant through this message.
        if (!this.#o.policy.authorizations(c.cid).some((g) => g.rid === resource_id)) return;
        this.#o.policy.authorize(c.cid, resource_id, expires_at * 1000);
        this.#o.log.info("authorization expiry moved", { ...this.#fields(c, resource_id), expires_at: new Date(expires_at * 1000).toISOString() });
        return;
      }
      case "resource_updated": {
        const r = m.payload;
        // Firezone updates only resources it serves; an unknown one arrives with its first flow.
        if (!this.#o.policy.resource(r.id)) return;
        this.#o.policy.upsertResource(r);
        this.#o.log.info("resource updated", { gid: this.#o.gid, rid: r.id, resource: r.name });
        for (const c of this.#clients.values()) if (this.#o.policy.authorizations(c.cid).some((g) => g.rid === r.id)) this.#note(c, now, "resource_updated", r.id);
        return;
      }
      case "ice_candidates":
      case "invalidate_ice_candidates": {
        const { client_id, candidates } = m.payload;
        const c = this.#clients.get(client_id);
        if (c) this.#note(c, now, m.event, undefined, `${candidates.length} candidate(s)`);
        if (m.event === "ice_candidates") this.#o.node.addRemoteCandidates(client_id, candidates, now);
        else this.#o.node.removeRemoteCandidates(client_id, candidates, now);
        return;
      }
      case "relays_presence": {
        const { disconnected_ids, connected } = m.payload;
        if (disconnected_ids.length > 0) this.#o.node.removeRelays(disconnected_ids, now);
        this.#setRelays(connected, now);
        this.#o.log.info("relays changed", { gid: this.#o.gid, connected: connected.map((r) => r.id).join(",") || undefined, disconnected: disconnected_ids.join(",") || undefined });
        return;
      }
    }
  }

  /** Events from the node: candidates the gateway gathered go to the client through the portal. */
  handleNodeEvent(e: PortalNodeEvent, now: number): void {
    const c = this.#clients.get(e.clientId);
    if (c) this.#note(c, now, e.type === "local_candidates" ? "broadcast_ice_candidates" : "broadcast_invalidated_ice_candidates", undefined, `${e.candidates.length} candidate(s)`);
    const payload = { client_ids: [e.clientId], candidates: e.candidates };
    this.#out.push(e.type === "local_candidates" ? { event: "broadcast_ice_candidates", payload } : { event: "broadcast_invalidated_ice_candidates", payload });
  }

  /** The policy's sweep ended an authorization at its expiry: a client left with nothing is told goodbye. */
  onExpired(cid: number, rid: string, now: number): void {
    const c = this.#byCid.get(cid);
    if (!c) return;
    this.#note(c, now, "authorization_expired", rid);
    this.#o.log.info("authorization expired", this.#fields(c, rid));
    this.#farewellIfEmpty(c, now);
  }

  /** The portal's view of a connection (admin: id, name, addresses, grants). */
  client(cid: number): PortalClientView | undefined {
    const c = this.#byCid.get(cid);
    return c ? this.#view(c) : undefined;
  }

  clients(): PortalClientView[] {
    return [...this.#clients.values()].map((c) => this.#view(c));
  }

  /** The portal's id of the client behind `cid` (cheap: metric labels per scrape). */
  clientIdOf(cid: number): string | undefined {
    return this.#byCid.get(cid)?.clientId;
  }

  /** The portal messages that touched `cid`'s client, oldest first. */
  timeline(cid: number): PortalTimelineEntry[] {
    return [...(this.#byCid.get(cid)?.timeline ?? [])];
  }

  get inits(): number {
    return this.#inits;
  }

  #init(p: Msg<"init">, now: number): void {
    this.#inits++;
    const was = this.#interface;
    if (!was || was.ipv4 !== p.interface.ipv4 || was.ipv6 !== p.interface.ipv6 || JSON.stringify(was.upstream_dns) !== JSON.stringify(p.interface.upstream_dns)) this.#interfaceChanged = true;
    this.#interface = p.interface;
    this.#setRelays(p.relays, now);
    // Authorizations the portal still lists stay (their expiry updated); the rest end now.
    const listed = new Map(p.authorizations.map((a) => [`${a.client_id}|${a.resource_id}`, a.expires_at]));
    let trimmed = 0;
    for (const c of [...this.#clients.values()]) {
      for (const g of this.#o.policy.authorizations(c.cid)) {
        const exp = listed.get(`${c.clientId}|${g.rid}`);
        if (exp === undefined) {
          this.#o.policy.revoke(c.cid, g.rid);
          this.#note(c, now, "init", g.rid, "not listed: revoked");
          this.#o.log.info("authorization dropped: the portal's init no longer lists it", this.#fields(c, g.rid));
          trimmed++;
        } else if (exp * 1000 !== g.expiresAt) this.#o.policy.authorize(c.cid, g.rid, exp * 1000);
      }
      this.#farewellIfEmpty(c, now);
    }
    this.#o.log.info("portal init applied", { gid: this.#o.gid, ipv4: p.interface.ipv4, ipv6: p.interface.ipv6, relays: p.relays.length, authorizations: p.authorizations.length, trimmed: trimmed || undefined, clients: this.#clients.size, inits: this.#inits });
  }

  #setRelays(relays: Msg<"relays_presence">["connected"], now: number): void {
    const turn = relays.flatMap((r) => (r.type === "turn" ? [{ id: r.id, addr: [parseSocketAddr(r.addr)], username: r.username, password: r.password, expiresAt: r.expires_at * 1000 }] : []));
    if (turn.length > 0) this.#o.node.setRelays(turn, now);
  }

  #upsert(spec: { clientId: string; publicKey: string; presharedKey: string; localIce: { username: string; password: string }; remoteIce: { username: string; password: string }; ipv4: string; ipv6: string }, now: number, event: string, rid: string): ClientState {
    const { cid, replaced } = this.#o.node.upsertClient({
      clientId: spec.clientId,
      publicKey: Buffer.from(spec.publicKey, "base64"),
      presharedKey: Buffer.from(spec.presharedKey, "base64"),
      localIce: { ufrag: spec.localIce.username, pwd: spec.localIce.password },
      remoteIce: { ufrag: spec.remoteIce.username, pwd: spec.remoteIce.password },
      // The portal's client addresses are its AllowedIPs here (inside 100.64.0.0/11, fd00:2021:1111::/107).
      allowedIPs: [parseCidr(`${spec.ipv4}/32`), parseCidr(`${spec.ipv6}/128`)],
    }, now);
    let c = this.#clients.get(spec.clientId);
    if (c && c.cid !== cid) {
      // New keys: a new connection. Its grants move with the client (the portal authorized the client, not the cid).
      for (const g of this.#o.policy.authorizations(c.cid)) this.#o.policy.authorize(cid, g.rid, g.expiresAt);
      this.#o.policy.revoke(c.cid);
      this.#byCid.delete(c.cid);
      c.cid = cid;
    }
    if (!c) this.#clients.set(spec.clientId, (c = { clientId: spec.clientId, cid, name: null, ipv4: spec.ipv4, ipv6: spec.ipv6, timeline: [] }));
    c.ipv4 = spec.ipv4;
    c.ipv6 = spec.ipv6;
    this.#byCid.set(cid, c);
    this.#note(c, now, event, rid, replaced ? "connection replaced (new keys)" : undefined);
    this.#o.log.info(replaced ? "client connection replaced" : "client connection upserted", { ...this.#fields(c, rid), event, ipv4: spec.ipv4, ipv6: spec.ipv6 });
    return c;
  }

  #grant(c: ClientState, resource: Msg<"authorize_flow">["resource"], expiresAt: ExpiresAt, _now: number, event: string): void {
    this.#o.policy.upsertResource(resource);
    this.#o.policy.authorize(c.cid, resource.id, expiresAt);
    this.#o.log.info("authorization granted", { ...this.#fields(c, resource.id), resource: resource.name, event, expires_at: expiresAt === null ? null : new Date(expiresAt).toISOString() });
  }

  #farewellIfEmpty(c: ClientState, now: number): void {
    if (this.#o.policy.authorizations(c.cid).length > 0) return;
    // As Firezone: a client whose last resource went is told goodbye, so it fails over at once.
    this.#o.node.removeClient(c.clientId, now);
    this.#note(c, now, "goodbye", undefined, "no resources left");
    this.#o.log.info("goodbye sent: no resources left", this.#fields(c));
    this.#clients.delete(c.clientId);
    this.#byCid.delete(c.cid);
  }

  #note(c: ClientState, at: number, event: string, rid?: string, detail?: string): void {
    c.timeline.push({ at, event, rid, detail });
    if (c.timeline.length > TIMELINE_PER_CLIENT) c.timeline.shift();
  }

  #fields(c: ClientState, rid?: string) {
    return { gid: this.#o.gid, cid: c.cid, client_id: c.clientId, rid };
  }

  #view(c: ClientState): PortalClientView {
    return {
      cid: c.cid,
      client_id: c.clientId,
      name: c.name,
      ipv4: c.ipv4,
      ipv6: c.ipv6,
      resources: this.#o.policy.authorizations(c.cid).map((g) => ({ rid: g.rid, expires_at: g.expiresAt === null ? null : new Date(g.expiresAt).toISOString() })),
    };
  }
}

/** "ip:port" or "[ipv6]:port" (the schema checked the shape). */
export function parseSocketAddr(s: string): Endpoint {
  const i = s.lastIndexOf(":");
  const host = s.slice(0, i);
  return { address: host.startsWith("[") ? host.slice(1, -1) : host, port: Number(s.slice(i + 1)) };
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b).toString("base64url");
}
