// The dev portal's protocol side: who is connected and joined, which flows exist, and every
// message in and out — independent of Bun.serve (server.ts hands it connections), so the page,
// the CLI and tests all read one state. It speaks Phoenix v1 object frames like the real portal
// to Firezone's gateway, and the small `client` topic of src/portal/client-messages.ts:
//
//   client create_flow → policy? resource? a joined gateway serving it? → gateway authorize_flow
//   gateway flow_authorized {ref} → client flow_created
//   (broadcast_)(invalidated_)ice_candidates relayed between the two sides
//   operator: authorize / revoke (→ reject_access) / expiry (→ access_authorization_expiry_updated)
import { decodeFrame, encodeFrame, type Frame } from "../../src/portal/frame.ts";
import { CLIENT_EGRESS } from "../../src/portal/client-messages.ts";
import { GATEWAY_EGRESS } from "../../src/portal/messages.ts";
import type { Seed } from "./seed.ts";

export type Side = "gateway" | "client";

/** One WebSocket as the portal sees it. */
export interface Conn {
  send(text: string): void;
  close(code?: number, reason?: string): void;
}

export interface Session {
  side: Side;
  id: string;
  conn: Conn;
  externalId: string;
  name: string;
  publicKey: string;
  userAgent: string;
  joined: boolean;
  connectedAt: number;
  /** Frames received that were not valid (garbage from a buggy device). */
  malformed: number;
}

export interface Flow {
  clientId: string;
  resourceId: string;
  gatewayId: string;
  ref: string;
  status: "pending" | "authorized";
  /** Unix seconds. Firezone's `init` lists authorizations with an expiry only, so a policy without
   * one gives its flows DEFAULT_FLOW_LIFETIME_S, as a real portal ties flows to the client's session. */
  expiresAt: number;
  presharedKey: string;
  clientIce: { username: string; password: string };
  gatewayIce: { username: string; password: string };
}

export interface Record_ {
  at: number;
  dir: "in" | "out";
  side: Side;
  id: string;
  event: string;
  payload: unknown;
}

export interface Behaviour {
  /** Never answer `phx_join` (to test a gateway's join timeout). */
  stallJoins: boolean;
}

const MAX_RECORDS = 500;
export const DEFAULT_FLOW_LIFETIME_S = 24 * 3600;

export class DevPortal {
  readonly sessions = new Map<string, Session>(); // key `${side}:${id}`
  readonly flows = new Map<string, Flow>(); // key `${clientId}/${resourceId}`
  readonly records: Record_[] = [];
  readonly behaviour: Behaviour = { stallJoins: false };
  private readonly policies: Seed["policies"];
  private readonly listeners = new Set<(r: Record_) => void>();

  constructor(readonly seed: Seed, private readonly clock: () => number = Date.now) {
    this.policies = [...seed.policies];
  }

  /** The device a token belongs to, or undefined (the server answers 401). */
  authenticate(side: Side, token: string): { id: string; name: string } | undefined {
    const list = side === "gateway" ? this.seed.gateways : this.seed.clients;
    return list.find((d) => d.token === token);
  }

  attach(side: Side, id: string, conn: Conn, info: { externalId: string; name: string; publicKey: string; userAgent: string }): Session {
    const key = `${side}:${id}`;
    this.sessions.get(key)?.conn.close(1000, "replaced by a new connection");
    const s: Session = { side, id, conn, ...info, joined: false, connectedAt: this.clock(), malformed: 0 };
    this.sessions.set(key, s);
    return s;
  }

  detach(s: Session): void {
    if (this.sessions.get(`${s.side}:${s.id}`) === s) this.sessions.delete(`${s.side}:${s.id}`);
  }

  onRecord(fn: (r: Record_) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  // ---- frames in ----

  handleFrame(s: Session, text: string): void {
    const d = decodeFrame(text);
    if (!d.ok) {
      s.malformed++;
      this.record("in", s, "(malformed)", { text: text.slice(0, 200), issue: d.fault.issue });
      return;
    }
    const f = d.frame;
    this.record("in", s, f.event, f.payload);
    if (f.topic === "phoenix" && f.event === "heartbeat") return this.reply(s, f, "ok", {});
    if (f.event === "phx_join") {
      if (f.topic !== s.side) return this.reply(s, f, "error", { reason: "unmatched topic" });
      if (this.behaviour.stallJoins) return;
      s.joined = true;
      this.reply(s, f, "ok", {});
      return s.side === "gateway" ? this.initGateway(s) : this.initClient(s);
    }
    if (!s.joined || f.topic !== s.side) return this.reply(s, f, "error", { reason: "unmatched topic" });
    const schemas: Record<string, { safeParse(x: unknown): { success: boolean; data?: unknown } }> = s.side === "gateway" ? GATEWAY_EGRESS : CLIENT_EGRESS;
    const checked = schemas[f.event]?.safeParse(f.payload);
    if (!checked?.success) {
      s.malformed++;
      return this.reply(s, f, "error", { reason: "invalid_payload" });
    }
    const p = checked.data as never;
    if (s.side === "gateway") this.fromGateway(s, f.event, p);
    else this.fromClient(s, f.event, p);
  }

  private fromGateway(s: Session, event: string, p: { ref?: string; client_ids?: string[]; candidates?: string[] }): void {
    switch (event) {
      case "flow_authorized": {
        const flow = [...this.flows.values()].find((x) => x.ref === p.ref && x.gatewayId === s.id);
        if (!flow) return;
        flow.status = "authorized";
        const gw = this.seed.gateways.find((g) => g.id === s.id)!;
        this.push("client", flow.clientId, "flow_created", {
          resource_id: flow.resourceId,
          gateway_id: s.id,
          gateway_group_id: gw.site,
          gateway_public_key: s.publicKey,
          gateway_ipv4: this.address("gateway", s.id, 4),
          gateway_ipv6: this.address("gateway", s.id, 6),
          preshared_key: flow.presharedKey,
          client_ice_credentials: flow.clientIce,
          gateway_ice_credentials: flow.gatewayIce,
        });
        return;
      }
      case "broadcast_ice_candidates":
      case "broadcast_invalidated_ice_candidates": {
        const ev = event === "broadcast_ice_candidates" ? "ice_candidates" : "invalidate_ice_candidates";
        for (const c of p.client_ids ?? []) this.push("client", c, ev, { gateway_id: s.id, candidates: p.candidates });
        return;
      }
    }
  }

  private fromClient(s: Session, event: string, p: { resource_id?: string; gateway_ids?: string[]; candidates?: string[] }): void {
    switch (event) {
      case "create_flow":
        return this.createFlow(s.id, p.resource_id!);
      case "broadcast_ice_candidates":
      case "broadcast_invalidated_ice_candidates": {
        const ev = event === "broadcast_ice_candidates" ? "ice_candidates" : "invalidate_ice_candidates";
        for (const g of p.gateway_ids ?? []) this.push("gateway", g, ev, { client_id: s.id, candidates: p.candidates });
        return;
      }
    }
  }

  private createFlow(clientId: string, resourceId: string): void {
    const resource = this.seed.resources.find((r) => r.id === resourceId);
    if (!resource) return this.push("client", clientId, "flow_creation_failed", { resource_id: resourceId, reason: "not_found" });
    const policy = this.policies.find((p) => p.client === clientId && p.resource === resourceId);
    if (!policy) return this.push("client", clientId, "flow_creation_failed", { resource_id: resourceId, reason: "forbidden" });
    const gateway = this.servingGateways(resourceId).find((g) => this.sessions.get(`gateway:${g}`)?.joined);
    if (!gateway) return this.push("client", clientId, "flow_creation_failed", { resource_id: resourceId, reason: "offline" });
    const client = this.sessions.get(`client:${clientId}`)!;
    const flow: Flow = {
      clientId,
      resourceId,
      gatewayId: gateway,
      ref: randomToken(12),
      status: "pending",
      expiresAt: Math.floor(this.clock() / 1000) + (policy.expires_in ?? DEFAULT_FLOW_LIFETIME_S),
      presharedKey: Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64"),
      clientIce: { username: randomToken(4), password: randomToken(22) },
      gatewayIce: { username: randomToken(4), password: randomToken(22) },
    };
    this.flows.set(`${clientId}/${resourceId}`, flow);
    this.push("gateway", gateway, "authorize_flow", {
      ref: flow.ref,
      resource: wireResource(resource),
      gateway_ice_credentials: flow.gatewayIce,
      client: { id: clientId, public_key: client.publicKey, preshared_key: flow.presharedKey, ipv4: this.address("client", clientId, 4), ipv6: this.address("client", clientId, 6) },
      client_ice_credentials: flow.clientIce,
      expires_at: flow.expiresAt,
    });
  }

  // ---- operator actions (the page, tests) ----

  /** Lets a client reach a resource (a policy); `expiresIn` seconds. */
  authorize(clientId: string, resourceId: string, expiresIn?: number): void {
    if (!this.seed.clients.some((c) => c.id === clientId)) throw new Error(`no client "${clientId}"`);
    if (!this.seed.resources.some((r) => r.id === resourceId)) throw new Error(`no resource "${resourceId}"`);
    this.revokePolicy(clientId, resourceId);
    this.policies.push({ client: clientId, resource: resourceId, ...(expiresIn ? { expires_in: expiresIn } : {}) });
  }

  /** Removes the policy and cuts a live flow: `reject_access` to its gateway. */
  revoke(clientId: string, resourceId: string): void {
    this.revokePolicy(clientId, resourceId);
    const key = `${clientId}/${resourceId}`;
    const flow = this.flows.get(key);
    if (!flow) return;
    this.flows.delete(key);
    this.push("gateway", flow.gatewayId, "reject_access", { client_id: clientId, resource_id: resourceId });
  }

  /** Moves a flow's expiry (Unix seconds): `access_authorization_expiry_updated` to its gateway. */
  setExpiry(clientId: string, resourceId: string, expiresAt: number): void {
    const flow = this.flows.get(`${clientId}/${resourceId}`);
    if (!flow) throw new Error(`no flow ${clientId} → ${resourceId}`);
    flow.expiresAt = expiresAt;
    this.push("gateway", flow.gatewayId, "access_authorization_expiry_updated", { client_id: clientId, resource_id: resourceId, expires_at: expiresAt });
  }

  /** Tells a device its token expired and closes its socket, as the real portal does. */
  expireToken(side: Side, id: string): void {
    const s = this.sessions.get(`${side}:${id}`);
    if (!s) return;
    this.push(side, id, "disconnect", { reason: "token_expired" });
    s.conn.close(1000, "token expired");
  }

  /** Writes any text to a device's socket (garbage, frames from the future). */
  sendRaw(side: Side, id: string, text: string): void {
    this.sessions.get(`${side}:${id}`)?.conn.send(text);
  }

  /** Forgets a device's join but keeps its socket, like a crashed channel: its next push gets
   * `unmatched topic`. */
  forgetJoin(side: Side, id: string): void {
    const s = this.sessions.get(`${side}:${id}`);
    if (s) s.joined = false;
  }

  policyList(): Seed["policies"] {
    return [...this.policies];
  }

  // ---- helpers ----

  private initGateway(s: Session): void {
    const live = [...this.flows.values()].filter((f) => f.gatewayId === s.id && f.status === "authorized");
    this.push("gateway", s.id, "init", {
      interface: { ipv4: this.address("gateway", s.id, 4), ipv6: this.address("gateway", s.id, 6) },
      config: { ipv4_masquerade_enabled: true, ipv6_masquerade_enabled: true },
      relays: this.seed.relays,
      account_slug: this.seed.account_slug,
      authorizations: live.map((f) => ({ client_id: f.clientId, resource_id: f.resourceId, expires_at: f.expiresAt })),
    });
  }

  private initClient(s: Session): void {
    const allowed = new Set(this.policies.filter((p) => p.client === s.id).map((p) => p.resource));
    this.push("client", s.id, "init", {
      interface: { ipv4: this.address("client", s.id, 4), ipv6: this.address("client", s.id, 6) },
      resources: this.seed.resources
        .filter((r) => allowed.has(r.id))
        .map((r) => ({ ...wireResource(r), gateway_groups: [...new Set(this.servingGateways(r.id).map((g) => this.seed.gateways.find((x) => x.id === g)!.site))].map((id) => ({ id, name: id })) })),
      relays: this.seed.relays,
    });
  }

  private servingGateways(resourceId: string): string[] {
    const r = this.seed.resources.find((x) => x.id === resourceId);
    return r?.gateways ?? this.seed.gateways.map((g) => g.id);
  }

  /** The seed's address, else one derived from the device's place in the seed. */
  address(side: Side, id: string, family: 4 | 6): string {
    const list = side === "gateway" ? this.seed.gateways : this.seed.clients;
    const i = list.findIndex((d) => d.id === id);
    const d = list[i];
    const given = family === 4 ? d?.ipv4 : d?.ipv6;
    if (given) return given;
    const n = (side === "gateway" ? 1 : 101) + i;
    return family === 4 ? `100.64.${n >> 8}.${n & 255}` : `fd00:2021:1111::${n.toString(16)}`;
  }

  private revokePolicy(clientId: string, resourceId: string): void {
    for (let i = this.policies.length - 1; i >= 0; i--) {
      if (this.policies[i]!.client === clientId && this.policies[i]!.resource === resourceId) this.policies.splice(i, 1);
    }
  }

  private reply(s: Session, f: Frame, status: "ok" | "error", response: unknown): void {
    this.write(s, f.topic, "phx_reply", { status, response }, f.ref);
  }

  private push(side: Side, id: string, event: string, payload: unknown): void {
    const s = this.sessions.get(`${side}:${id}`);
    if (!s) return;
    this.write(s, side, event, payload, null);
  }

  private write(s: Session, topic: string, event: string, payload: unknown, ref: Frame["ref"]): void {
    this.record("out", s, event, payload);
    s.conn.send(typeof ref === "string" ? JSON.stringify({ topic, event, payload, ref }) : encodeFrame(topic, event, payload, ref));
  }

  private record(dir: "in" | "out", s: Session, event: string, payload: unknown): void {
    const r: Record_ = { at: this.clock(), dir, side: s.side, id: s.id, event, payload };
    this.records.push(r);
    if (this.records.length > MAX_RECORDS) this.records.shift();
    for (const fn of this.listeners) fn(r);
  }
}

/** A seed resource as it goes on the wire (without the dev portal's own `gateways` key). */
function wireResource(r: Seed["resources"][number]): Record<string, unknown> {
  const { gateways: _g, ...rest } = r;
  return rest;
}

function randomToken(length: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}
