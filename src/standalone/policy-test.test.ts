import { describe, expect, test } from "bun:test";
import { nobleAead } from "../crypto/aead-noble.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { GatewayCore, parseResource } from "../gateway/index.ts";
import { parseCidr } from "../ip/address.ts";
import type { PeerRow } from "../store/index.ts";
import { Tunnel } from "../tunnel/index.ts";
import { PolicyQueryError, testPolicy } from "./policy-test.ts";

function world() {
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(), random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
  const core = new GatewayCore();
  const fileKey = publicKeyOf(generatePrivateKey());
  const storeKey = publicKeyOf(generatePrivateKey());
  const offKey = encodeKey(publicKeyOf(generatePrivateKey()));
  const file = tunnel.upsertPeer({ publicKey: fileKey, allowedIPs: [parseCidr("10.99.0.2/32")] });
  const stored = tunnel.upsertPeer({ publicKey: storeKey, allowedIPs: [parseCidr("10.99.0.3/32")] });
  const row = (name: string, publicKey: string, enabled: boolean) => ({ id: name, name, publicKey, enabled, allowedIps: "" }) as unknown as PeerRow;
  const rows = [row("laptop", encodeKey(storeKey), true), row("old-phone", offKey, false)];
  return { tunnel, core, file, stored, offKey, deps: { tunnel, core, storePeers: () => rows } };
}

describe("policy tester", () => {
  test("with no resources every peer reaches anything its AllowedIPs send (plain WireGuard)", () => {
    const w = world();
    const r = testPolicy(w.deps, { peer: String(w.file.cid), dst: "10.0.0.5", protocol: "tcp", port: 443 }, 0);
    expect(r).toMatchObject({ verdict: "allow", peer: { cid: w.file.cid, source: "file" }, packet: { src: "10.99.0.2", dst: "10.0.0.5", port: 443 } });
    expect(r.steps.map((s) => s.step)).toEqual(["peer", "mode"]);
  });

  test("a store peer found by name is denied a filtered port, with the rule list; its key finds the same", () => {
    const w = world();
    w.core.policy.upsertResource(parseResource({ type: "cidr", id: "lan", address: "10.0.0.0/24", filters: [{ protocol: "tcp", port_range_start: 22, port_range_end: 22 }] }));
    w.core.policy.authorize(w.stored.cid, "lan", Date.parse("2026-12-01T00:00:00Z"));
    const now = Date.parse("2026-11-29T00:00:00Z");
    const r = testPolicy(w.deps, { peer: "laptop", dst: "10.0.0.5", protocol: "tcp", port: 443 }, now);
    expect(r).toMatchObject({ verdict: "deny", reason: "filtered", resource: "lan", peer: { name: "laptop", source: "store", cid: w.stored.cid } });
    expect(r.steps.map((s) => `${s.step}:${s.outcome}`)).toEqual(["peer:pass", "resource:pass", "authorization:pass", "filter:fail"]);
    expect(r.steps[2]!.detail).toContain("until 2026-12-01T00:00:00.000Z (in 2 days)");
    expect(testPolicy(w.deps, { peer: w.stored.publicKey, dst: "10.0.0.5", protocol: "tcp", port: 22 }, now)).toMatchObject({ verdict: "allow" });
  });

  test("a disabled store peer is denied: it is not in the data plane", () => {
    const w = world();
    const r = testPolicy(w.deps, { peer: "old-phone", dst: "10.0.0.5", protocol: "icmp" }, 0);
    expect(r).toMatchObject({ verdict: "deny", reason: "peer_not_in_data_plane", peer: { enabled: false, public_key: w.offKey } });
    expect(r.steps[0]!.detail).toContain("disabled");
  });

  test("a DNS proxy address names its domain; a name without one says so", () => {
    const w = world();
    w.core.policy.upsertResource(parseResource({ type: "dns", id: "app", address: "*.corp.example" }));
    const a = w.core.nat.proxies.assign("git.corp.example");
    w.core.policy.setProxyAddresses("app", a.v4.map((bytes) => ({ family: 4 as const, bytes, prefix: 32 })));
    w.core.policy.authorize(w.file.cid, "app", null);
    const byName = testPolicy(w.deps, { peer: String(w.file.cid), dst: "git.corp.example", protocol: "tcp", port: 443 }, 0);
    expect(byName).toMatchObject({ verdict: "allow", resource: "app" });
    expect(byName.steps.map((s) => s.step)).toEqual(["peer", "dns_name", "dns_proxy", "resource", "authorization", "filter"]);
    expect(byName.steps[2]!.detail).toContain("proxy address 1 of git.corp.example");
    expect(testPolicy(w.deps, { peer: String(w.file.cid), dst: "wiki.corp.example", protocol: "udp", port: 53 }, 0)).toMatchObject({ verdict: "deny", reason: "name_not_resolved" });
  });

  test("an unknown peer or a destination that is neither address nor name is refused naming the field", () => {
    const w = world();
    expect(() => testPolicy(w.deps, { peer: "nobody", dst: "10.0.0.5", protocol: "icmp" }, 0)).toThrow(new PolicyQueryError("peer", '"nobody" is no peer\'s cid, public key or name'));
    try {
      testPolicy(w.deps, { peer: String(w.file.cid), dst: "not an address!", protocol: "icmp" }, 0);
      throw new Error("accepted");
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyQueryError);
      expect((err as PolicyQueryError).field).toBe("dst");
    }
  });
});
