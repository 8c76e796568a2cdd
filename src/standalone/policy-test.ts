// The policy tester behind the admin's Tools page and `GET /api/policy/test`: "may this peer reach
// that address and port now?" The peer is found by cid, public key or name (file and store peers);
// a probe packet from its tunnel address is built and given to GatewayCore.explain — the data
// path's own decision code — so the answer is what the gateway would do with that packet.
import { formatCidr, formatIp, parseIp } from "../ip/address.ts";
import { buildIcmpEcho, buildTcp, buildUdp } from "../ip/build.ts";
import type { DecisionStep, DenyReason, GatewayCore } from "../gateway/index.ts";
import type { PeerRow } from "../store/index.ts";
import type { Tunnel } from "../tunnel/index.ts";

export interface PolicyQuery {
  /** A cid, a public key (base64) or a peer's name. */
  peer: string;
  /** An IP address, or a name a DNS resource covers (tested through its proxy address). */
  dst: string;
  protocol: "tcp" | "udp" | "icmp";
  /** Required for tcp and udp. */
  port?: number;
}

export type PolicyStep = DecisionStep | { step: "peer" | "dns_name"; outcome: "pass" | "fail"; detail: string };

export interface PolicyTestResult {
  verdict: "allow" | "deny";
  reason?: DenyReason | "peer_not_in_data_plane" | "name_not_resolved";
  peer: { cid?: number; public_key: string; name?: string; source: "file" | "store"; enabled?: boolean };
  packet: { src?: string; dst: string; protocol: string; port?: number };
  /** The most specific resource the destination matched. */
  resource?: string;
  steps: PolicyStep[];
  /** When the decision was taken (ISO): authorizations expire. */
  at: string;
}

/** A query that names no peer or destination we know; `field` is the query parameter. */
export class PolicyQueryError extends Error {
  constructor(readonly field: "peer" | "dst" | "port", message: string) {
    super(message);
    this.name = "PolicyQueryError";
  }
}

export interface PolicyTestDeps {
  tunnel: Tunnel;
  core: GatewayCore;
  /** Peers created in the admin (names, enabled or not). */
  storePeers: () => PeerRow[];
}

const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export function testPolicy(deps: PolicyTestDeps, q: PolicyQuery, now: number): PolicyTestResult {
  const at = new Date(now).toISOString();
  const { tunnel, core } = deps;
  const rows = deps.storePeers();
  const shown = JSON.stringify(q.peer.length > 64 ? `${q.peer.slice(0, 64)}…` : q.peer);
  // cid, then public key, then name: a name that looks like a cid is still found by name below.
  let conn = /^\d{1,8}$/.test(q.peer) ? tunnel.connection(Number(q.peer)) : undefined;
  let row: PeerRow | undefined;
  if (!conn && KEY.test(q.peer)) {
    conn = [...tunnel.connections()].find((c) => c.publicKey === q.peer);
    row = rows.find((r) => r.publicKey === q.peer);
  }
  if (!conn && !row) {
    const named = rows.filter((r) => r.name === q.peer);
    if (named.length > 1) throw new PolicyQueryError("peer", `${shown} names ${named.length} peers: use the public key or cid`);
    row = named[0];
    if (row) conn = [...tunnel.connections()].find((c) => c.publicKey === row!.publicKey);
  }
  if (conn && !row) row = rows.find((r) => r.publicKey === conn!.publicKey);
  if (!conn && !row) throw new PolicyQueryError("peer", `${shown} is no peer's cid, public key or name`);

  const peer: PolicyTestResult["peer"] = {
    cid: conn?.cid,
    public_key: conn?.publicKey ?? row!.publicKey,
    name: row?.name,
    source: row ? "store" : "file",
    enabled: row ? Boolean(row.enabled) : undefined,
  };
  const steps: PolicyStep[] = [];
  const packet: PolicyTestResult["packet"] = { dst: q.dst, protocol: q.protocol, port: q.protocol === "icmp" ? undefined : q.port };
  if (!conn) {
    steps.push({ step: "peer", outcome: "fail", detail: `${row!.name} is not in the data plane (${row!.enabled ? "expired, or its AllowedIPs were refused: see the log" : "disabled"}): it can reach nothing` });
    return { verdict: "deny", reason: "peer_not_in_data_plane", peer, packet, steps, at };
  }

  // The destination: an address, or a name whose proxy address the DNS-resource NAT assigned.
  let dst = safeParseIp(q.dst);
  if (!dst) {
    const name = q.dst.trim().toLowerCase().replace(/\.$/, "");
    if (!/^([a-z0-9-]{1,63}\.)*[a-z0-9-]{1,63}$/.test(name) || name.length > 253) {
      throw new PolicyQueryError("dst", `${JSON.stringify(q.dst.slice(0, 64))} is neither an IP address nor a domain name`);
    }
    const assigned = core.nat.proxies.assignments().find((a) => a.domain === name);
    if (!assigned) {
      steps.push({ step: "dns_name", outcome: "fail", detail: `${name} has no proxy address yet: a client gets one when it resolves the name through the gateway's DNS (and is authorized for a DNS resource covering it)` });
      return { verdict: "deny", reason: "name_not_resolved", peer, packet, steps, at };
    }
    dst = assigned.v4[0] ?? assigned.v6[0]!;
    steps.push({ step: "dns_name", outcome: "pass", detail: `${name} is served through proxy address ${formatIp(dst)}` });
  }
  const family = dst.length === 4 ? 4 : 6;
  const own = conn.allowedIPs.find((c) => c.family === family);
  // A source inside the peer's AllowedIPs (what the tunnel accepts from it); the network address
  // of a range is as good as any other for the decision, which looks only at the destination.
  const src = own ? formatIp(own.bytes) : family === 4 ? "0.0.0.0" : "::";
  packet.src = src;
  packet.dst = formatIp(dst);
  steps.unshift({ step: "peer", outcome: "pass", detail: `cid ${conn.cid}${row ? ` (${row.name})` : " (config file)"}, AllowedIPs ${conn.allowedIPs.map(formatCidr).join(", ") || "none"}` });
  if (!own) {
    steps.push({ step: "peer", outcome: "fail", detail: `the peer has no IPv${family} AllowedIPs: it cannot send IPv${family} through the tunnel` });
    return { verdict: "deny", reason: "peer_not_in_data_plane", peer, packet, steps, at };
  }
  const bytes = q.protocol === "tcp"
    ? buildTcp({ src, dst: packet.dst, srcPort: 40000, dstPort: q.port!, flags: 0x02 })
    : q.protocol === "udp"
      ? buildUdp({ src, dst: packet.dst, srcPort: 40000, dstPort: q.port! })
      : buildIcmpEcho({ src, dst: packet.dst, id: 1, seq: 1 });
  const e = core.explain(conn.cid, bytes, now);
  steps.push(...e.steps);
  return { verdict: e.verdict, reason: e.reason, peer, packet, resource: e.resource, steps, at };
}

function safeParseIp(text: string): Uint8Array | undefined {
  try {
    return parseIp(text);
  } catch {
    return undefined;
  }
}
