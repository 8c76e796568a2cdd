import { describe, expect, test } from "bun:test";
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
