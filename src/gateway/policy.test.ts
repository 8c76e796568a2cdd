import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { buildIcmpEcho, buildIcmpError, buildTcp, buildUdp } from "../ip/build.ts";
import { PacketView } from "../ip/packet.ts";
import { AccessPolicy } from "./policy.ts";
import { domainMatches, filtersAllow, parseResource } from "./resources.ts";

const CID = 7;
const view = (p: Uint8Array) => {
  const v = new PacketView();
  const e = v.parse(p);
  if (e) throw e;
  return v;
};
const tcp = (dst: string, dstPort: number) => view(buildTcp({ src: "10.99.0.2", dst, srcPort: 40000, dstPort }));

function policy() {
  const p = new AccessPolicy();
  p.upsertResource(parseResource({ type: "cidr", id: "lan", address: "10.50.0.0/16", filters: [{ protocol: "tcp", port_range_start: 22, port_range_end: 22 }, { protocol: "icmp" }] }));
  p.upsertResource(parseResource({ type: "cidr", id: "db", address: "10.50.7.0/24", filters: [{ protocol: "tcp", port_range_start: 5432, port_range_end: 5432 }] }));
  p.upsertResource(parseResource({ type: "cidr", id: "open", address: "192.0.2.0/24" }));
  return p;
}

describe("decisions", () => {
  test("allowed port passes, another port is filtered, an unauthorized resource is refused", () => {
    const p = policy();
    p.authorize(CID, "lan", null);
    expect(p.decide(CID, tcp("10.50.1.1", 22), 0)).toBeUndefined();
    expect(p.decide(CID, tcp("10.50.1.1", 80), 0)).toBe("filtered");
    expect(p.decide(CID, view(buildUdp({ src: "10.99.0.2", dst: "10.50.1.1", srcPort: 1, dstPort: 22 })), 0)).toBe("filtered");
    expect(p.decide(CID, view(buildIcmpEcho({ src: "10.99.0.2", dst: "10.50.1.1", id: 1, seq: 1 })), 0)).toBeUndefined();
    // The most specific resource decides: 10.50.7.x is "db", which this client may not use.
    expect(p.decide(CID, tcp("10.50.7.9", 22), 0)).toBe("not_authorized");
    expect(p.lastResource?.id).toBe("db");
    expect(p.decide(CID, tcp("172.16.0.1", 22), 0)).toBe("no_resource");
    expect(p.decide(99, tcp("10.50.1.1", 22), 0)).toBe("not_authorized");
  });

  test("no filters allow everything; ICMP errors from clients are not forwarded (as Firezone)", () => {
    const p = policy();
    p.authorize(CID, "open", null);
    p.authorize(CID, "lan", null);
    expect(p.decide(CID, view(buildUdp({ src: "10.99.0.2", dst: "192.0.2.9", srcPort: 1, dstPort: 9999 })), 0)).toBeUndefined();
    const quoted = view(buildUdp({ src: "10.50.1.1", dst: "10.99.0.2", srcPort: 53, dstPort: 4000 }));
    expect(p.decide(CID, view(buildIcmpError(quoted, "10.99.0.2", 3, 3)), 0)).toBe("outbound_icmp_error");
  });

  test("the internet resource catches everything without a more specific resource", () => {
    const p = policy();
    p.upsertResource(parseResource({ type: "internet", id: "inet" }));
    p.authorize(CID, "inet", null);
    expect(p.decide(CID, tcp("8.8.8.8", 443), 0)).toBeUndefined();
    expect(p.decide(CID, view(buildTcp({ src: "fd00::2", dst: "2606:4700::1111", srcPort: 1, dstPort: 443 })), 0)).toBeUndefined();
    // Private, CGNAT, documentation and link-local destinations are not "the internet".
    for (const dst of ["172.16.5.5", "100.64.1.1", "198.51.100.1", "169.254.1.1"]) expect(p.decide(CID, tcp(dst, 443), 0)).toBe("not_public");
    expect(p.decide(CID, view(buildTcp({ src: "fd00::2", dst: "2001:db8::1", srcPort: 1, dstPort: 443 })), 0)).toBe("not_public");
    expect(p.decide(CID, tcp("10.50.1.1", 22), 0)).toBe("not_authorized"); // lan is more specific
  });

  test("authorizations expire: refused at once, removed by the sweep, and can be extended", () => {
    const p = policy();
    p.authorize(CID, "lan", 1_000);
    expect(p.decide(CID, tcp("10.50.1.1", 22), 999)).toBeUndefined();
    expect(p.decide(CID, tcp("10.50.1.1", 22), 1_000)).toBe("authorization_expired");
    expect(p.nextExpiry()).toBe(1_000);
    p.authorize(CID, "lan", 5_000); // expiry updated (access_authorization_expiry_updated)
    expect(p.sweep(1_000)).toEqual([]);
    expect(p.sweep(5_000)).toEqual([{ cid: CID, rid: "lan" }]);
    expect(p.decide(CID, tcp("10.50.1.1", 22), 5_001)).toBe("not_authorized");
    expect(p.authorizations(CID)).toEqual([]);
  });

  test("removing a resource removes its authorizations", () => {
    const p = policy();
    p.authorize(CID, "lan", null);
    p.removeResource("lan");
    expect(p.decide(CID, tcp("10.50.1.1", 22), 0)).toBe("no_resource");
    expect(() => p.authorize(CID, "lan", null)).toThrow('unknown resource "lan"');
  });
});

describe("explain (the policy tester)", () => {
  test("a filtered port names the resource, the authorization and the filters none of which matched", () => {
    const p = policy();
    p.authorize(CID, "lan", 90_000);
    const e = p.explain(CID, tcp("10.50.1.1", 443), 30_000);
    expect(e).toMatchObject({ verdict: "deny", reason: "filtered", resource: "lan" });
    expect(e.steps.map((s) => [s.step, s.outcome])).toEqual([["resource", "pass"], ["authorization", "pass"], ["filter", "fail"]]);
    expect(e.steps[0]!.detail).toContain("cidr 10.50.0.0/16");
    expect(e.steps[1]).toMatchObject({ expiresAt: 90_000, detail: 'authorized for "lan" until 1970-01-01T00:01:30.000Z (in 60 s)' });
    expect(e.steps[2]!.detail).toBe('tcp/443 matches none of "lan"\'s filters (tcp/22, icmp)');
  });

  test("an allowed packet names the filter rule that let it through", () => {
    const p = policy();
    p.authorize(CID, "lan", null);
    const e = p.explain(CID, view(buildIcmpEcho({ src: "10.99.0.2", dst: "10.50.1.1", id: 1, seq: 1 })), 0);
    expect(e).toMatchObject({ verdict: "allow", reason: undefined });
    expect(e.steps.at(-1)).toMatchObject({ step: "filter", outcome: "pass", rule: 1, detail: 'icmp matches filter 2 of "lan": icmp' });
    p.authorize(CID, "open", null);
    expect(p.explain(CID, tcp("192.0.2.1", 8080), 0).steps.at(-1)!.detail).toBe('"open" has no filters: all protocols and ports');
  });

  test("no resource, no authorization and an expired one each stop the walk where they fail", () => {
    const p = policy();
    expect(p.explain(CID, tcp("172.16.0.1", 22), 0).steps).toEqual([{ step: "resource", outcome: "fail", detail: expect.stringContaining("no resource contains") }]);
    expect(p.explain(CID, tcp("10.50.7.1", 22), 0)).toMatchObject({ reason: "not_authorized", resource: "db", steps: [{ rid: "db" }, { step: "authorization", outcome: "fail" }] });
    p.authorize(CID, "lan", 1_000);
    const e = p.explain(CID, tcp("10.50.1.1", 22), 2_000);
    expect(e.reason).toBe("authorization_expired");
    expect(e.steps.at(-1)!.detail).toBe('the authorization for "lan" expired at 1970-01-01T00:00:01.000Z');
  });

  test("explain's verdict is decide's for any policy, packet and time (one walk)", () => {
    const cidr = fc.record({ a: fc.integer({ min: 0, max: 3 }), b: fc.integer({ min: 0, max: 3 }), prefix: fc.constantFrom(8, 16, 24, 32) });
    const filter = fc.oneof(
      fc.constant({ protocol: "icmp" }),
      fc.record({ protocol: fc.constantFrom("tcp", "udp"), port_range_start: fc.integer({ min: 0, max: 100 }), port_range_end: fc.integer({ min: 100, max: 200 }) }),
    );
    const resource = fc.record({ internet: fc.boolean(), net: cidr, filters: fc.array(filter, { maxLength: 3 }) });
    const packet = fc.record({
      kind: fc.constantFrom("tcp", "udp", "echo", "icmp_error"),
      dst: fc.oneof(fc.tuple(fc.constantFrom(10, 8, 192), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 })).map((o) => o.join(".")), fc.constant("2606:4700::1111"), fc.constant("fd00::9")),
      port: fc.integer({ min: 0, max: 250 }),
    });
    fc.assert(fc.property(
      fc.array(resource, { minLength: 1, maxLength: 5 }),
      fc.array(fc.record({ cid: fc.integer({ min: 1, max: 2 }), r: fc.nat(), exp: fc.option(fc.integer({ min: 0, max: 100 })) }), { maxLength: 6 }),
      packet, fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 100 }),
      (resources, grants, pk, cid, now) => {
        const p = new AccessPolicy();
        resources.forEach((r, i) => p.upsertResource(parseResource(r.internet
          ? { type: "internet", id: `r${i}`, filters: r.filters }
          : { type: "cidr", id: `r${i}`, address: `10.${r.net.a}.${r.net.b}.0/${r.net.prefix === 32 ? 32 : r.net.prefix}`.replace(/\.0\/32$/, ".1/32"), filters: r.filters })));
        for (const g of grants) p.authorize(g.cid, `r${g.r % resources.length}`, g.exp);
        const v6 = pk.dst.includes(":");
        const src = v6 ? "fd00::2" : "10.99.0.2";
        const bytes = pk.kind === "tcp" ? buildTcp({ src, dst: pk.dst, srcPort: 1, dstPort: pk.port })
          : pk.kind === "udp" ? buildUdp({ src, dst: pk.dst, srcPort: 1, dstPort: pk.port })
          : pk.kind === "echo" || v6 ? buildIcmpEcho({ src, dst: pk.dst, id: 1, seq: 1 })
          : buildIcmpError(view(buildUdp({ src: pk.dst, dst: src, srcPort: 53, dstPort: 4000 })), src, 3, 3);
        const v = view(bytes);
        const decided = p.decide(cid, v, now);
        const decidedResource = p.lastResource?.id;
        const e = p.explain(cid, v, now);
        expect(e.reason).toBe(decided);
        expect(e.verdict).toBe(decided === undefined ? "allow" : "deny");
        expect(e.resource).toBe(decidedResource);
        // The path ends where the walk did: a deny in a failed step, an allow after passing ones.
        expect(e.steps.at(-1)!.outcome).toBe(decided === undefined ? "pass" : "fail");
        expect(e.steps.slice(0, -1).every((s) => s.outcome === "pass")).toBe(true);
      },
    ), { numRuns: 500 });
  });
});

describe("resources", () => {
  test("wildcards as Firezone: * is one label (a leading *. also the apex), ** any number, ? one character", () => {
    expect(domainMatches("app.example.com", "APP.example.com.")).toBe(true);
    expect(domainMatches("*.example.com", "a.example.com")).toBe(true);
    expect(domainMatches("*.example.com", "a.b.example.com")).toBe(false);
    expect(domainMatches("*.example.com", "example.com")).toBe(true);
    expect(domainMatches("?.example.com", "example.com")).toBe(false);
    expect(domainMatches("app.*.example.com", "app.a.b.example.com")).toBe(false);
    expect(domainMatches("**.example.com", "example.com")).toBe(true);
    expect(domainMatches("**.example.com", "a.b.example.com")).toBe(true);
    expect(domainMatches("**.example.com", "badexample.com")).toBe(false);
    expect(domainMatches("ap?.example.com", "api.example.com")).toBe(true);
    expect(domainMatches("ap?.example.com", "apps.example.com")).toBe(false);
  });

  test("bad resources name the field and value", () => {
    expect(() => parseResource({ type: "cidr", id: "x", address: "10.0.0.0/99" })).toThrow('resource address: "10.0.0.0/99" has prefix length "99"');
    expect(() => parseResource({ type: "dns", id: "x", address: "not a domain" })).toThrow('"not a domain" is not a domain');
    expect(() => parseResource({ type: "cidr", id: "x", address: "10.0.0.0/8", filters: [{ protocol: "tcp", port_range_start: 90, port_range_end: 80 }] })).toThrow("port_range_start is above port_range_end");
    expect(() => parseResource({ type: "vpn", id: "x" })).toThrow("resource type");
  });

  test("filters", () => {
    expect(filtersAllow([], 6, 1)).toBe(true);
    expect(filtersAllow([{ protocol: "udp", portStart: 53, portEnd: 53 }], 17, 53)).toBe(true);
    expect(filtersAllow([{ protocol: "udp", portStart: 53, portEnd: 53 }], 6, 53)).toBe(false);
  });
});

test("extending one authorization a hundred thousand times keeps its expiry exact through the heap compactions", () => {
  const p = new AccessPolicy();
  p.upsertResource(parseResource({ type: "cidr", id: "lan", address: "10.50.1.0/24" }));
  for (let i = 1; i <= 100_000; i++) p.authorize(1, "lan", 1_000_000 + i);
  p.authorize(2, "lan", 5);
  expect(p.nextExpiry()).toBe(5);
  expect(p.sweep(5)).toEqual([{ cid: 2, rid: "lan" }]);
  expect(p.nextExpiry()).toBe(1_100_000);
  expect(p.sweep(1_099_999)).toEqual([]);
  expect(p.sweep(1_100_000)).toEqual([{ cid: 1, rid: "lan" }]);
  expect(p.nextExpiry()).toBeUndefined();
});
