// The admin's connection snapshot says what the gateway has proven, with the time it got there.
import { expect, test } from "bun:test";
import { nobleAead } from "../crypto/aead-noble.ts";
import { generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { parseCidr } from "../ip/address.ts";
import { Tunnel } from "../tunnel/index.ts";
import { seededRandom } from "../../test/support/wire-pair.ts";
import { ConnectionStates } from "./connection-state.ts";
import { connectionViews } from "./view.ts";

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
