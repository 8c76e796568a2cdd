// The audit trail says a connection was established only once its keys were confirmed.
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nobleAead } from "../crypto/aead-noble.ts";
import { generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { parseCidr } from "../ip/address.ts";
import { Store } from "../store/index.ts";
import { Tunnel } from "../tunnel/index.ts";
import { seededRandom } from "../../test/support/wire-pair.ts";
import { ConnectionAudit } from "./connection-audit.ts";

test("a responder's connection is audited as established at key confirmation, not when it answered", () => {
  const random = seededRandom(1);
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-audit-")));
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(random), random });
  const conn = tunnel.upsertPeer({ publicKey: publicKeyOf(generatePrivateKey(random)), allowedIPs: [parseCidr("10.99.0.2/32")], endpoint: { address: "198.51.100.1", port: 40000 } });
  const audit = new ConnectionAudit(store, tunnel);
  const established = () => store.audit.query({ action: "connection.established" }).rows;
  // A wrong preshared key: answered again and again, never confirmed.
  for (let i = 1; i <= 3; i++) audit.onEvent({ type: "handshake_completed", role: "responder", session: (conn.cid << 8) | i, remote: { address: "198.51.100.1", port: 40000 }, cid: conn.cid });
  expect(established()).toHaveLength(0);
  audit.onEvent({ type: "session_confirmed", session: (conn.cid << 8) | 3, rttMs: 12, cid: conn.cid });
  expect(established()).toMatchObject([{ cid: conn.cid, subject: conn.publicKey, reason: "from 198.51.100.1:40000" }]);
  audit.onEvent({ type: "handshake_failed", attempts: 19, cid: conn.cid });
  expect(store.audit.query({ action: "connection.closed" }).rows).toMatchObject([{ cid: conn.cid, reason: "handshake gave up" }]);
  store.close();
});
