import { expect, test } from "bun:test";
import { AccessPolicy } from "./policy.ts";
import { formatIp, parseIp } from "../ip/address.ts";
import { buildUdp } from "../ip/build.ts";
import { PacketView } from "../ip/packet.ts";
import { AllowedIps } from "../tunnel/allowed-ips.ts";
import { DnsNat, MAX_PROXY_NAMES_PER_CLIENT, ProxyIpAllocator, RECLAIM_AFTER } from "./dns-nat.ts";
import { DnsResponder, type DnsVerdict } from "./dns-responder.ts";
import { buildQuery, TYPE_A } from "./dns-message.ts";
import { parseResource } from "./resources.ts";

const CID = 7;
const parsed = (p: Uint8Array) => {
  const v = new PacketView();
  const e = v.parse(p);
  if (e) throw e;
  return v;
};
function responder() {
  const policy = new AccessPolicy();
  policy.upsertResource(parseResource({ type: "dns", id: "web", address: "*.app.example.com" }));
  policy.authorize(CID, "web", null);
  return new DnsResponder(policy, new DnsNat(new ProxyIpAllocator()));
}

test("a tunnel client's query for its resource name gets proxy addresses", () => {
  expect(responder().answer(buildQuery(1, "x.app.example.com", TYPE_A), CID, 0)).toMatchObject({ kind: "answer", rid: "web" });
});

test("a query from outside the tunnel is refused, not answered or forwarded", () => {
  const v = responder().answer(buildQuery(1, "x.app.example.com", TYPE_A), undefined, 0);
  expect(v).toMatchObject({ kind: "refused", reason: "not_a_tunnel_client" });
  expect(v.kind === "refused" && v.bytes?.[3]).toBe(5); // REFUSED
});

test("a label with a dot inside cannot pose as a resource name", () => {
  // One label "x.app" then "example", "com": reads as x.app.example.com if joined naively.
  const q = buildQuery(1, "x-app.example.com", TYPE_A);
  q[12 + 2] = 0x2e; // "x-app" → "x.app" inside a single label
  const v = responder().answer(q, CID, 0);
  expect(v).toMatchObject({ kind: "refused", reason: "label contains a dot" });
});

test("a DNS response sent to the resolver gets no reply (no loops between resolvers)", () => {
  const q = buildQuery(1, "x.app.example.com", TYPE_A);
  q[2] = q[2]! | 0x80;
  expect(responder().answer(q, CID, 0)).toMatchObject({ kind: "refused", bytes: undefined });
});

const rcode = (v: DnsVerdict) => (v.kind === "answer" || v.kind === "limited" || v.kind === "refused" ? (v.bytes?.[3] ?? -1) & 0x0f : -1);

function wildcard(proxies = new ProxyIpAllocator()) {
  const policy = new AccessPolicy();
  policy.upsertResource(parseResource({ type: "dns", id: "corp", address: "**.corp.example.com" }));
  for (const cid of [1, 2, 3]) policy.authorize(cid, "corp", null);
  const saved: string[] = [];
  const nat = new DnsNat(proxies);
  return { policy, nat, saved, r: new DnsResponder(policy, nat, (d) => saved.push(d)) };
}

test("a client asking for endless random names under a ** pattern gets SERVFAIL past its cap, with a warning a minute; other clients still get answers", () => {
  const { r, nat, saved } = wildcard();
  const verdicts: DnsVerdict[] = [];
  for (let i = 0; i < MAX_PROXY_NAMES_PER_CLIENT + 500; i++) verdicts.push(r.answer(buildQuery(i, `r${i}.corp.example.com`, TYPE_A), 1, i * 10));
  expect(verdicts.filter((v) => v.kind === "answer")).toHaveLength(MAX_PROXY_NAMES_PER_CLIENT);
  const limited = verdicts.filter((v) => v.kind === "limited");
  expect(limited).toHaveLength(500);
  expect(limited.every((v) => rcode(v) === 2 && v.reason === "client_limit" && v.rid === "corp")).toBe(true); // SERVFAIL
  // 500 refusals over 5 s: one warning (the first); then, a minute on, one covering the rest.
  expect(limited.filter((v) => v.kind === "limited" && v.warn)).toHaveLength(1);
  const later = r.answer(buildQuery(1, "late.corp.example.com", TYPE_A), 1, 80_000);
  expect(later).toMatchObject({ kind: "limited", warn: { refusals: 500 } });
  expect(saved).toHaveLength(MAX_PROXY_NAMES_PER_CLIENT); // nothing more reaches the database
  expect(nat.proxies.size).toBe(MAX_PROXY_NAMES_PER_CLIENT);
  expect(nat.proxies.refused.client_limit).toBe(501);
  // Names it already has still answer; other clients are unaffected.
  expect(r.answer(buildQuery(1, "r5.corp.example.com", TYPE_A), 1, 70_001).kind).toBe("answer");
  expect(r.answer(buildQuery(1, "other.corp.example.com", TYPE_A), 2, 70_001).kind).toBe("answer");
});

test("past the gateway-wide cap new names get SERVFAIL for every client; names already assigned keep answering", () => {
  const { r, nat } = wildcard(new ProxyIpAllocator({ total: 10, perClient: 8 }));
  for (let i = 0; i < 8; i++) expect(r.answer(buildQuery(i, `a${i}.corp.example.com`, TYPE_A), 1, 0).kind).toBe("answer");
  for (let i = 0; i < 2; i++) expect(r.answer(buildQuery(i, `b${i}.corp.example.com`, TYPE_A), 2, 0).kind).toBe("answer");
  expect(r.answer(buildQuery(1, "c.corp.example.com", TYPE_A), 3, 0)).toMatchObject({ kind: "limited", reason: "table_limit" });
  expect(r.answer(buildQuery(1, "a3.corp.example.com", TYPE_A), 3, 0).kind).toBe("answer");
  expect(nat.proxies.refused.table_limit).toBe(1);
});

test("names unused for a day are reclaimed (route, row and addresses freed) unless a NAT session still uses them; their addresses go to new names", () => {
  const { r, nat, policy } = wildcard(new ProxyIpAllocator({ total: 3, perClient: 3 }));
  const ip = (v: DnsVerdict) => (v.kind === "answer" ? v.bytes : undefined);
  for (const n of ["old", "busy", "fresh"]) expect(ip(r.answer(buildQuery(1, `${n}.corp.example.com`, TYPE_A), 1, 0))).toBeDefined();
  const busy = nat.proxies.assign("busy.corp.example.com");
  const old = nat.proxies.assign("old.corp.example.com");
  nat.setResolved("busy.corp.example.com", [parseIp("192.0.2.1")!], 0);
  // A long-lived UDP flow keeps "busy" in use; "fresh" is queried again late in the day.
  const flow = () => parsed(buildUdp({ src: "10.99.0.2", dst: formatIp(busy.v4[0]!), srcPort: 4000, dstPort: 53 }));
  for (let t = 0; t <= RECLAIM_AFTER + 60_000; t += 60_000) expect(nat.outbound(flow(), t, 1)).toBe("translated");
  r.answer(buildQuery(2, "fresh.corp.example.com", TYPE_A), 1, RECLAIM_AFTER - 1);
  expect(r.answer(buildQuery(3, "new.corp.example.com", TYPE_A), 1, RECLAIM_AFTER)).toMatchObject({ kind: "limited", reason: "client_limit" });
  expect(r.reclaimIdle(RECLAIM_AFTER + 60_000)).toEqual(["old.corp.example.com"]);
  expect(nat.proxies.lookup(old.v4[0]!, 0, 4)).toBeUndefined();
  expect(policy.decide(1, parsed(buildUdp({ src: "10.99.0.2", dst: formatIp(old.v4[0]!), srcPort: 1, dstPort: 53 })), RECLAIM_AFTER + 60_000)).toBeDefined(); // no longer routed
  // The freed slot (and its quota) goes to the next new name.
  const again = r.answer(buildQuery(4, "new.corp.example.com", TYPE_A), 1, RECLAIM_AFTER + 60_001);
  expect(again.kind).toBe("answer");
  expect(nat.proxies.assign("new.corp.example.com").v4.map(formatIp)).toEqual(old.v4.map(formatIp));
  // Nothing is reclaimed while it is younger than a day.
  expect(r.reclaimIdle(RECLAIM_AFTER + 120_000)).toEqual([]);
});

test("each new name under a pattern adds its own routes: answering n names costs n, not n², route insertions", () => {
  const { r, policy } = wildcard();
  const insert = AllowedIps.prototype.insert;
  let inserts = 0;
  AllowedIps.prototype.insert = function (this: AllowedIps<unknown>, ...args: Parameters<typeof insert>) {
    inserts++;
    return insert.apply(this, args);
  };
  try {
    for (let i = 0; i < 300; i++) expect(r.answer(buildQuery(i, `n${i}.corp.example.com`, TYPE_A), 1, 0).kind).toBe("answer");
  } finally {
    AllowedIps.prototype.insert = insert;
  }
  expect(inserts).toBe(300 * 8);
  // And they route: the last name's proxy address belongs to the resource.
  const last = r.answer(buildQuery(1, "n299.corp.example.com", TYPE_A), 1, 0);
  expect(last.kind).toBe("answer");
  expect(policy.decide(1, parsed(buildUdp({ src: "10.99.0.2", dst: "100.96.4.172", srcPort: 1, dstPort: 53 })), 0)).toBeUndefined();
});
