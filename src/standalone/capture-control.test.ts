import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nobleAead } from "../crypto/aead-noble.ts";
import { generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { parseCidr } from "../ip/address.ts";
import { Store } from "../store/index.ts";
import { Tunnel } from "../tunnel/index.ts";
import { CaptureService } from "./capture-control.ts";

test("captures are audited when started and when they end: by an operator, a peer leaving, or shutdown", () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-capture-")));
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(), random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
  const a = tunnel.upsertPeer({ publicKey: publicKeyOf(generatePrivateKey()), allowedIPs: [parseCidr("10.99.0.2/32")] });
  const b = tunnel.upsertPeer({ publicKey: publicKeyOf(generatePrivateKey()), allowedIPs: [parseCidr("10.99.0.3/32")] });
  const c = tunnel.upsertPeer({ publicKey: publicKeyOf(generatePrivateKey()), allowedIPs: [parseCidr("10.99.0.4/32")] });
  let now = 1_000_000;
  const svc = new CaptureService(tunnel, store, () => now);
  const limits = { maxPackets: 10, maxBytes: 4096, maxSeconds: 30 };
  svc.start(a.cid, limits, "admin:ops");
  svc.start(b.cid, limits, "admin:ops");
  svc.start(c.cid, limits, "admin:ops");
  expect(() => svc.start(999, limits, "admin:ops")).toThrow("no connection 999");

  now += 2_500;
  expect(svc.stop(a.cid, "admin:ops")).toMatchObject({ state: "stopped", stop_reason: "stopped" });
  tunnel.removePeer(tunnel.connection(b.cid)!.peer.remoteStatic);
  svc.sweep();
  svc.shutdown();

  const rows = store.audit.query({}, { limit: 50, offset: 0 }).rows.reverse();
  expect(rows.map((r) => [r.action, r.actor, r.cid, r.subject, r.reason])).toEqual([
    ["capture.started", "admin:ops", a.cid, a.publicKey, null],
    ["capture.started", "admin:ops", b.cid, b.publicKey, null],
    ["capture.started", "admin:ops", c.cid, c.publicKey, null],
    ["capture.stopped", "admin:ops", a.cid, a.publicKey, "stopped"],
    // The peer is gone from the tunnel, the row still names it.
    ["capture.stopped", "gateway", b.cid, b.publicKey, "connection_gone"],
    ["capture.stopped", "gateway", c.cid, c.publicKey, "shutdown"],
  ]);
  expect(JSON.parse(rows[0]!.after!)).toEqual({ max_packets: 10, max_bytes: 4096, max_seconds: 30 });
  expect(JSON.parse(rows[3]!.after!)).toEqual({ packets: 0, bytes: 24, seconds: 2.5 });
  store.close();
});
