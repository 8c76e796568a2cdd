// The admin's connection snapshot says what the gateway has proven, with the time it got there.
import { expect, test } from "bun:test";
import { nobleAead } from "../crypto/aead-noble.ts";
import { generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { parseCidr } from "../ip/address.ts";
import { Tunnel } from "../tunnel/index.ts";
import { seededRandom } from "../../test/support/wire-pair.ts";
import { ConnectionStates } from "./connection-state.ts";
import { LocalIdentity, WirePeer, type Endpoint } from "../wire/index.ts";
import { icmpEcho } from "../../test/support/icmp.ts";
import { connectionViews, unattributedDrops } from "./view.ts";

test("after the gateway's handshake gives up, the connection says failed (not handshaking) and since when", () => {
  const random = seededRandom(3);
  const t0 = 1_760_000_000_000;
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(random), random });
  const conn = tunnel.upsertPeer({ publicKey: publicKeyOf(generatePrivateKey(random)), allowedIPs: [parseCidr("10.99.0.2/32")], endpoint: { address: "198.51.100.9", port: 51820 } });
  const states = new ConnectionStates();
  states.added(conn.cid, t0);
  // Something for the peer: the gateway initiates; nobody ever answers.
  tunnel.encapsulate(Uint8Array.of(0x45, 0, 0, 20, ...new Array(12).fill(0), 10, 99, 0, 2), new Uint8Array(200), t0);
  let failedAt = 0;
  for (let now = t0; now <= t0 + 120_000; now += 500) {
    tunnel.handleTimeout(now);
    while (tunnel.pollTransmit());
    for (let e = tunnel.pollEvent(); e; e = tunnel.pollEvent()) {
      states.onEvent(e, now);
      if (e.type === "handshake_failed") failedAt = now;
    }
    if (now === t0 + 30_000) expect(connectionViews(tunnel, now, states)[0]!.state).toBe("handshaking");
  }
  expect(failedAt).toBeGreaterThan(t0);
  const v = connectionViews(tunnel, t0 + 120_000, states)[0]!;
  expect(v.state).toBe("failed");
  expect(v.state_since).toBe(new Date(failedAt).toISOString());
});

test("packets from outside a connection's AllowedIPs count on that connection, not as dropped by no known connection", () => {
  const random = seededRandom(5);
  const now = 1_760_000_000_000;
  const gw: Endpoint = { address: "192.0.2.1", port: 52625 };
  const from: Endpoint = { address: "198.51.100.1", port: 40000 };
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(random), random });
  const local = new LocalIdentity(generatePrivateKey(random), random);
  const client = new WirePeer({ aead: nobleAead, local, remoteStatic: tunnel.identity.publicKey, connectionId: 100, endpoint: gw, random });
  const conn = tunnel.upsertPeer({ publicKey: local.publicKey, allowedIPs: [parseCidr("10.99.0.2/32")] });
  const states = new ConnectionStates();
  states.added(conn.cid, now);
  const out = new Uint8Array(70000);
  const settle = () => {
    for (let round = 0; round < 10; round++) {
      for (let t = client.pollTransmit(); t; t = client.pollTransmit()) tunnel.decapsulate(t.data, from, out, now);
      for (let t = tunnel.pollTransmit(); t; t = tunnel.pollTransmit()) client.handleInput(t.data, gw, now);
      while (client.pollEvent());
    }
    while (tunnel.pollEvent());
  };
  // Three packets from 10.99.0.77, outside the peer's 10.99.0.2/32.
  for (let seq = 0; seq < 3; seq++) client.send(icmpEcho({ src: "10.99.0.77", dst: "10.50.0.9", type: 8, id: 1, seq, payload: Uint8Array.of(seq) }), now);
  settle();
  expect(tunnel.tunnelDrops().allowed_ips).toBe(3);
  expect(connectionViews(tunnel, now, states)[0]!.drops.allowed_ips).toBe(3);
  expect(unattributedDrops(tunnel, [["no_route", 2]])).toEqual({ no_route: 2 });
  // Once the connection is gone its drops are nobody's.
  tunnel.removePeer(local.publicKey);
  expect(unattributedDrops(tunnel, [])).toEqual({ allowed_ips: 3 });
});
