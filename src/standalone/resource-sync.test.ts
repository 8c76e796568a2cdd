import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nobleAead } from "../crypto/aead-noble.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { AccessPolicy, parseResource } from "../gateway/index.ts";
import { buildTcp } from "../ip/build.ts";
import { parseCidr } from "../ip/address.ts";
import { PacketView } from "../ip/packet.ts";
import { Store } from "../store/index.ts";
import { Logger, parseLogFilter } from "../telemetry/log.ts";
import { Tunnel } from "../tunnel/index.ts";
import { ResourceSync } from "./resource-sync.ts";

test("API resources and grants reach the policy next to the file's, and leave it when removed", () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-rsync-")));
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(), random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
  const peerKey = publicKeyOf(generatePrivateKey());
  const conn = tunnel.upsertPeer({ publicKey: peerKey, allowedIPs: [parseCidr("10.99.0.2/32")] });
  const policy = new AccessPolicy();
  policy.upsertResource(parseResource({ type: "cidr", id: "file", address: "192.0.2.0/24" }));
  const sync = new ResourceSync(policy, tunnel, store, ["file"], new Logger(parseLogFilter("off")).target("gateway"));
  store.resources.upsert({ type: "cidr", id: "api", address: "10.50.0.0/16" }, "test");
  store.resources.authorize({ publicKey: encodeKey(peerKey), resourceId: "api", expiresAt: null }, "test", new Set([encodeKey(peerKey)]));
  sync.apply();
  const v = new PacketView();
  v.parse(buildTcp({ src: "10.99.0.2", dst: "10.50.1.1", srcPort: 1, dstPort: 22 }));
  expect(policy.decide(conn.cid, v, 0)).toBeUndefined();
  store.resources.revoke(encodeKey(peerKey), "api", "test");
  sync.apply();
  expect(policy.decide(conn.cid, v, 0)).toBe("not_authorized");
  store.resources.delete("api", "test");
  sync.apply();
  expect(policy.resource("api")).toBeUndefined();
  expect(policy.resource("file")).toBeDefined();
});

test("a stored grant for an id the config file also uses never opens the file's resource", () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-rsync-")));
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(), random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
  const peerKey = publicKeyOf(generatePrivateKey());
  const conn = tunnel.upsertPeer({ publicKey: peerKey, allowedIPs: [parseCidr("10.99.0.2/32")] });
  const policy = new AccessPolicy();
  policy.upsertResource(parseResource({ type: "cidr", id: "file", address: "192.0.2.0/24" }));
  const sync = new ResourceSync(policy, tunnel, store, ["file"], new Logger(parseLogFilter("off")).target("gateway"));
  // A row from before ids were checked for clashes: same id as the file's resource.
  store.resources.upsert({ type: "cidr", id: "file", address: "198.51.100.0/24" }, "test");
  store.resources.authorize({ publicKey: encodeKey(peerKey), resourceId: "file", expiresAt: null }, "test", new Set([encodeKey(peerKey)]));
  sync.apply();
  const v = new PacketView();
  v.parse(buildTcp({ src: "10.99.0.2", dst: "192.0.2.1", srcPort: 1, dstPort: 22 }));
  expect(policy.decide(conn.cid, v, 0)).toBe("not_authorized");
});
