import { describe, expect, test } from "bun:test";
import { AccessPolicy } from "../gateway/index.ts";
import { formatCidr } from "../ip/address.ts";
import { GATEWAY_INGRESS, type GatewayIngress } from "../portal/index.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";
import { PortalSession, type ClientSpec, type PortalNode, type RelaySpec } from "./portal-session.ts";

const KEY = "uMBCkAxTewfSgypIyxdQ18uCi84HLtKmQJy0wvQrYWY=";
const KEY2 = "anX2T9RH9mimT5Xd5+HqNGV0bfCodWDHQch1DLiFNls=";
const PSK = "anX2T9RH9mimT5Xd5+HqNGV0bfCodWDHQch1DLiFNls=";
const C1 = "client-1";
const R1 = "res-1";
const R2 = "res-2";
const T0 = 1_800_000_000_000; // Unix ms, like the shells' clock()

/** The portal as the channel delivers it: validated by the same schemas. */
function msg(event: keyof typeof GATEWAY_INGRESS, payload: unknown): GatewayIngress {
  return { event, payload: GATEWAY_INGRESS[event].parse(payload) } as GatewayIngress;
}
const resource = (id: string, address = "10.0.0.0/24") => ({ type: "cidr", id, name: `name-${id}`, address, filters: [] });
const flow = (o: { ref?: string; rid?: string; key?: string; expires?: number | null; client?: string } = {}) =>
  msg("authorize_flow", {
    ref: o.ref ?? "ref-1",
    resource: resource(o.rid ?? R1),
    gateway_ice_credentials: { username: "gw", password: "gwpassword1234567890ab" },
    client: { id: o.client ?? C1, public_key: o.key ?? KEY, preshared_key: PSK, ipv4: "100.64.0.2", ipv6: "fd00:2021:1111::2" },
    client_ice_credentials: { username: "cl", password: "clpassword1234567890ab" },
    expires_at: o.expires === undefined ? null : o.expires,
  });
const init = (authorizations: { client_id: string; resource_id: string; expires_at: number }[] = [], relays: unknown[] = []) =>
  msg("init", { interface: { ipv4: "100.64.0.1", ipv6: "fd00:2021:1111::1" }, config: { ipv4_masquerade_enabled: true, ipv6_masquerade_enabled: true }, relays, authorizations });

/** Records every call; a client's cid changes when its public key does (as the node's upsert). */
class FakeNode implements PortalNode {
  calls: [string, ...unknown[]][] = [];
  clients = new Map<string, { cid: number; key: string; spec: ClientSpec }>();
  relays = new Map<string, RelaySpec>();
  #next = 1;
  upsertClient(spec: ClientSpec) {
    this.calls.push(["upsertClient", spec.clientId]);
    const key = Buffer.from(spec.publicKey).toString("base64");
    const was = this.clients.get(spec.clientId);
    if (was && was.key === key) return { cid: was.cid, replaced: false };
    const cid = this.#next++;
    this.clients.set(spec.clientId, { cid, key, spec });
    return { cid, replaced: was !== undefined };
  }
  addRemoteCandidates(id: string, sdps: string[]) {
    this.calls.push(["addRemoteCandidates", id, sdps]);
  }
  removeRemoteCandidates(id: string, sdps: string[]) {
    this.calls.push(["removeRemoteCandidates", id, sdps]);
  }
  removeClient(id: string) {
    this.calls.push(["removeClient", id]);
    this.clients.delete(id);
  }
  setRelays(relays: RelaySpec[]) {
    this.calls.push(["setRelays", relays.map((r) => r.id)]);
    for (const r of relays) this.relays.set(r.id, r);
  }
  removeRelays(ids: string[]) {
    this.calls.push(["removeRelays", ids]);
    for (const id of ids) this.relays.delete(id);
  }
}

function world() {
  const node = new FakeNode();
  const policy = new AccessPolicy();
  const lines: LogLine[] = [];
  const log = new Logger(parseLogFilter("debug"), memorySink(lines)).target("portal");
  const session = new PortalSession({ node, policy, log, gid: "gw-test", random: (n) => new Uint8Array(n).fill(7) });
  const sent = () => {
    const out = [];
    for (let m = session.pollSend(); m; m = session.pollSend()) out.push(m);
    return out;
  };
  return { node, policy, lines, session, sent };
}

describe("portal session", () => {
  test("init gives the TUN its addresses once, and again only when they change", () => {
    const w = world();
    w.session.handle(init(), T0);
    expect(w.session.pollInterfaceChange()).toMatchObject({ ipv4: "100.64.0.1", ipv6: "fd00:2021:1111::1" });
    expect(w.session.pollInterfaceChange()).toBeUndefined();
    w.session.handle(init(), T0 + 1000); // a reconnect's init: same addresses
    expect(w.session.pollInterfaceChange()).toBeUndefined();
    w.session.handle(msg("init", { interface: { ipv4: "100.64.0.9", ipv6: "fd00:2021:1111::9" }, config: { ipv4_masquerade_enabled: true, ipv6_masquerade_enabled: true } }), T0 + 2000);
    expect(w.session.pollInterfaceChange()?.ipv4).toBe("100.64.0.9");
  });

  test("authorize_flow upserts the client with both ICE credentials, grants the resource with its expiry, and answers flow_authorized with the ref", () => {
    const w = world();
    w.session.handle(flow({ ref: "abc", expires: T0 / 1000 + 60 }), T0);
    const c = w.node.clients.get(C1)!;
    expect(c.spec.localIce).toEqual({ ufrag: "gw", pwd: "gwpassword1234567890ab" });
    expect(c.spec.remoteIce).toEqual({ ufrag: "cl", pwd: "clpassword1234567890ab" });
    expect(Buffer.from(c.spec.presharedKey!).toString("base64")).toBe(PSK);
    expect(c.spec.allowedIPs!.map(formatCidr)).toEqual(["100.64.0.2/32", "fd00:2021:1111::2/128"]);
    expect(w.policy.authorizations(c.cid)).toEqual([{ rid: R1, expiresAt: T0 + 60_000 }]);
    expect(w.sent()).toEqual([{ event: "flow_authorized", payload: { ref: "abc" } }]);
    const line = w.lines.find((l) => l.msg === "authorization granted")!;
    expect(line).toMatchObject({ gid: "gw-test", cid: c.cid, client_id: C1, rid: R1 });
  });

  test("a second flow for another resource keeps the connection and adds the grant", () => {
    const w = world();
    w.session.handle(flow(), T0);
    w.session.handle(flow({ rid: R2, ref: "r2" }), T0 + 10);
    const cid = w.node.clients.get(C1)!.cid;
    expect(w.policy.authorizations(cid).map((g) => g.rid).sort()).toEqual([R1, R2]);
    expect(w.node.calls.filter((c) => c[0] === "upsertClient")).toHaveLength(2);
  });

  test("new keys for a client make a new connection that keeps the client's grants", () => {
    const w = world();
    w.session.handle(flow(), T0);
    const old = w.node.clients.get(C1)!.cid;
    w.session.handle(flow({ rid: R2, key: KEY2 }), T0 + 10);
    const now = w.node.clients.get(C1)!.cid;
    expect(now).not.toBe(old);
    expect(w.policy.authorizations(old)).toEqual([]);
    expect(w.policy.authorizations(now).map((g) => g.rid).sort()).toEqual([R1, R2]);
    expect(w.session.client(now)?.client_id).toBe(C1);
    expect(w.session.clientIdOf(now)).toBe(C1);
    expect(w.session.clientIdOf(old)).toBeUndefined();
    expect(w.session.client(old)).toBeUndefined();
  });

  test("reject_access of one of two resources revokes it; of the last one says goodbye and forgets the client", () => {
    const w = world();
    w.session.handle(flow(), T0);
    w.session.handle(flow({ rid: R2 }), T0);
    const cid = w.node.clients.get(C1)!.cid;
    w.session.handle(msg("reject_access", { client_id: C1, resource_id: R1 }), T0 + 5);
    expect(w.policy.authorizations(cid).map((g) => g.rid)).toEqual([R2]);
    expect(w.node.calls.some((c) => c[0] === "removeClient")).toBe(false);
    w.session.handle(msg("reject_access", { client_id: C1, resource_id: R2 }), T0 + 6);
    expect(w.node.calls.at(-1)).toEqual(["removeClient", C1]);
    expect(w.session.client(cid)).toBeUndefined();
    expect(w.lines.find((l) => l.msg === "goodbye sent: no resources left")).toMatchObject({ cid, client_id: C1, gid: "gw-test" });
  });

  test("an authorization that expires on the policy's sweep ends the client when it was the last", () => {
    const w = world();
    w.session.handle(flow({ expires: T0 / 1000 + 30 }), T0);
    const cid = w.node.clients.get(C1)!.cid;
    expect(w.policy.sweep(T0 + 29_999)).toEqual([]);
    const expired = w.policy.sweep(T0 + 30_000);
    expect(expired).toEqual([{ cid, rid: R1 }]);
    for (const e of expired) w.session.onExpired(e.cid, e.rid, T0 + 30_000);
    expect(w.node.calls.at(-1)).toEqual(["removeClient", C1]);
    expect(w.session.timeline(cid)).toEqual([]); // forgotten with the client
  });

  test("access_authorization_expiry_updated moves an existing grant's expiry and grants nothing new", () => {
    const w = world();
    w.session.handle(flow({ expires: T0 / 1000 + 30 }), T0);
    const cid = w.node.clients.get(C1)!.cid;
    w.session.handle(msg("access_authorization_expiry_updated", { client_id: C1, resource_id: R1, expires_at: T0 / 1000 + 3600 }), T0 + 1);
    expect(w.policy.authorizations(cid)).toEqual([{ rid: R1, expiresAt: T0 + 3_600_000 }]);
    expect(w.policy.sweep(T0 + 30_000)).toEqual([]); // the old expiry no longer ends it
    w.session.handle(msg("access_authorization_expiry_updated", { client_id: C1, resource_id: R2, expires_at: T0 / 1000 + 3600 }), T0 + 2);
    expect(w.policy.authorizations(cid).map((g) => g.rid)).toEqual([R1]);
  });

  test("ice_candidates and invalidate_ice_candidates reach the node; gathered candidates go back as broadcasts", () => {
    const w = world();
    w.session.handle(flow(), T0);
    const sdp = "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host";
    w.session.handle(msg("ice_candidates", { client_id: C1, candidates: [sdp] }), T0);
    w.session.handle(msg("invalidate_ice_candidates", { client_id: C1, candidates: [sdp] }), T0);
    expect(w.node.calls.slice(-2)).toEqual([["addRemoteCandidates", C1, [sdp]], ["removeRemoteCandidates", C1, [sdp]]]);
    w.sent();
    w.session.handleNodeEvent({ type: "local_candidates", clientId: C1, candidates: [sdp] }, T0);
    w.session.handleNodeEvent({ type: "invalidated_candidates", clientId: C1, candidates: [sdp] }, T0);
    expect(w.sent()).toEqual([
      { event: "broadcast_ice_candidates", payload: { client_ids: [C1], candidates: [sdp] } },
      { event: "broadcast_invalidated_ice_candidates", payload: { client_ids: [C1], candidates: [sdp] } },
    ]);
    const cid = w.node.clients.get(C1)!.cid;
    expect(w.session.timeline(cid).map((e) => e.event)).toEqual(["authorize_flow", "ice_candidates", "invalidate_ice_candidates", "broadcast_ice_candidates", "broadcast_invalidated_ice_candidates"]);
  });

  test("relays from init and relays_presence: TURN relays set with parsed addresses, disconnected ones removed", () => {
    const w = world();
    const turn = (id: string, addr: string) => ({ type: "turn", id, addr, username: "u", password: "p", expires_at: 1_900_000_000 });
    w.session.handle(init([], [turn("relay-1", "192.0.2.1:3478"), { type: "stun", id: "stun-1", addr: "192.0.2.9:3478" }]), T0);
    expect(w.node.relays.get("relay-1")).toEqual({ id: "relay-1", addr: [{ address: "192.0.2.1", port: 3478 }], username: "u", password: "p", expiresAt: 1_900_000_000_000 });
    expect(w.node.relays.has("stun-1")).toBe(false);
    w.session.handle(msg("relays_presence", { disconnected_ids: ["relay-1"], connected: [turn("relay-2", "[2001:db8::1]:3478")] }), T0 + 1);
    expect([...w.node.relays.keys()]).toEqual(["relay-2"]);
    expect(w.node.relays.get("relay-2")!.addr).toEqual([{ address: "2001:db8::1", port: 3478 }]);
  });

  test("resource_updated changes a served resource and ignores one this gateway does not serve", () => {
    const w = world();
    w.session.handle(flow(), T0);
    w.session.handle(msg("resource_updated", resource(R1, "10.9.0.0/16")), T0 + 1);
    const r = w.policy.resource(R1)!;
    expect(r.type === "cidr" && r.address.prefix).toBe(16);
    w.session.handle(msg("resource_updated", resource("elsewhere")), T0 + 2);
    expect(w.policy.resource("elsewhere")).toBeUndefined();
  });

  test("a reconnect's init keeps listed authorizations (with the portal's expiry) and ends the others with a goodbye", () => {
    const w = world();
    w.session.handle(init(), T0);
    w.session.handle(flow(), T0);
    w.session.handle(flow({ client: "client-2", key: KEY2 }), T0);
    const c1 = w.node.clients.get(C1)!.cid;
    // The portal restarted and came back knowing only client-1's flow.
    w.session.handle(init([{ client_id: C1, resource_id: R1, expires_at: T0 / 1000 + 600 }]), T0 + 60_000);
    expect(w.policy.authorizations(c1)).toEqual([{ rid: R1, expiresAt: T0 + 600_000 }]);
    expect(w.node.calls.filter((c) => c[0] === "removeClient")).toEqual([["removeClient", "client-2"]]);
    expect(w.session.clients().map((c) => c.client_id)).toEqual([C1]);
    expect(w.node.calls.filter((c) => c[0] === "upsertClient")).toHaveLength(2); // nothing rebuilt
  });

  test("deprecated request_connection answers connection_ready with ICE credentials of our own; allow_access adds a resource", () => {
    const w = world();
    w.session.handle(msg("request_connection", { ref: "old-1", resource: resource(R1), client: { id: C1, payload: { ice_parameters: { username: "u", password: "p" }, domain: null }, peer: { persistent_keepalive: null, public_key: KEY, preshared_key: PSK, ipv4: "100.64.0.3", ipv6: "fd00::3" } }, expires_at: null }), T0);
    const out = w.sent();
    expect(out[0]!.event).toBe("connection_ready");
    const ice = (out[0]!.payload as { gateway_payload: { ConnectionAccepted: { ice_parameters: { username: string; password: string } } } }).gateway_payload.ConnectionAccepted.ice_parameters;
    expect(w.node.clients.get(C1)!.spec.localIce).toEqual({ ufrag: ice.username, pwd: ice.password });
    w.session.handle(msg("allow_access", { ref: "old-2", client_id: C1, resource: resource(R2, "10.2.0.0/16"), expires_at: null, payload: null, client_ipv4: "100.64.0.3", client_ipv6: "fd00::3" }), T0 + 1);
    expect(w.policy.authorizations(w.node.clients.get(C1)!.cid).map((g) => g.rid).sort()).toEqual([R1, R2]);
  });

  test("messages about unknown clients change nothing", () => {
    const w = world();
    w.session.handle(msg("reject_access", { client_id: "nobody", resource_id: R1 }), T0);
    w.session.handle(msg("access_authorization_expiry_updated", { client_id: "nobody", resource_id: R1, expires_at: 1 }), T0);
    w.session.handle(msg("allow_access", { ref: "x", client_id: "nobody", resource: resource(R1), expires_at: null, payload: null, client_ipv4: "100.64.0.3", client_ipv6: "fd00::3" }), T0);
    expect(w.node.calls).toEqual([]);
    expect(w.sent()).toEqual([]);
  });
});
