// The client side of the ICE interop tests: werift-ice (an independent TypeScript ICE agent) as the
// *controlling* agent, as a Firezone client would be. Run inside a test's namespace; talks JSON lines:
//   stdout {kind:"hello", ufrag, pwd, candidates}            after gathering
//   stdin  {kind:"remote", ufrag, pwd, candidates}           the gateway's credentials and candidates
//   stdout {kind:"connected", ms, local, remote}             nominated (ms since the remote arrived)
//   stdin  {kind:"send", text} → datagram on the selected pair; stdout {kind:"data", text} per datagram in
// Env: STUN_SERVER=host:port (srflx), HOST_ADDRESS=ip (an extra host address, e.g. 127.0.0.1).
// With WG=1 the client is a WireGuard client too (glassgate's own src/wire client side), as a
// Firezone client is: hello carries its publicKey; stdin {kind:"ping", count, dst} sends ICMP echo
// requests from CLIENT_IP through the tunnel over the selected pair; stdout {kind:"wg_data", len,
// icmpType} per decrypted packet. The gateway's key comes with "remote" (gatewayPublicKey).
// TURN_ONLY=1: only relay candidates are offered (RELAY_SERVER=host:port, TURN_USER, TURN_PASSWORD).
import { Candidate, Connection } from "werift-ice";
import { nobleAead } from "../../src/crypto/aead-noble.ts";
import { decodeKey, encodeKey, generatePrivateKey } from "../../src/crypto/x25519.ts";
import { LocalIdentity, WirePeer } from "../../src/wire/index.ts";
import { icmpEcho } from "./icmp.ts";
import { linesOf } from "./lines.ts";
import { createRequire } from "node:module";

// werift retransmits a STUN request 50 ms after the first send, doubling: a connectivity check gets
// 5 sends over 1.55 s. Its regular nomination is ONE such request, and when it goes unanswered
// werift marks the pair failed and never nominates again (`nominating` stays set): with the NAT
// test's single working pair the client then never connects. A gateway process paused 1.5 s on a
// loaded CI host (or, before nat-topology.ts blackholed the internet, answers lost after ICMP errors)
// was enough. RFC 8489 §6.2.1 and RFC 8445 §14.3 put the RTO at 500 ms at least: 15.5 s for a check.
createRequire(import.meta.url)("werift-ice/lib/ice-server/src/stun/const.js").RETRY_RTO = 500;

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");

const stun = process.env.STUN_SERVER;
const extra = process.env.HOST_ADDRESS;
const conn = new Connection(process.env.ICE_ROLE !== "controlled", {
  useIpv6: false,
  ...(stun ? { stunServer: [stun.split(":")[0]!, Number(stun.split(":")[1])] as [string, number] } : {}),
  ...(extra ? { additionalHostAddresses: [extra] } : {}),
});
const wg = process.env.WG === "1";
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const identity = wg ? new LocalIdentity(generatePrivateKey(random), random) : undefined;
let peer: WirePeer | undefined;
const clientIp = process.env.CLIENT_IP ?? "10.99.0.2";
/** Whatever the WireGuard side has to send goes over the nominated pair. */
function flushWg(): void {
  if (!peer) return;
  for (let t = peer.pollTransmit(); t; t = peer.pollTransmit()) void conn.send(Buffer.from(t.data)).catch(() => {});
  for (let e = peer.pollEvent(); e; e = peer.pollEvent()) {
    if (e.type === "data" && flood) {
      flood.replies++;
      flood.bytes += e.packet.length;
      flood.outstanding--;
    } else if (e.type === "data") out({ kind: "wg_data", len: e.packet.length, icmpType: e.packet[9] === 1 ? e.packet[20] : undefined });
    else if (e.type === "handshake_completed") out({ kind: "wg_handshake" });
  }
}
/** Bench mode: echo requests of `size` bytes kept `window` in flight for `ms`; replies counted. */
let flood: { until: number; size: number; window: number; outstanding: number; sent: number; replies: number; bytes: number; started: number } | undefined;
function floodMore(): void {
  const f = flood;
  if (!f || !peer) return;
  const now = performance.now();
  if (now >= f.until) {
    out({ kind: "flood_done", sent: f.sent, replies: f.replies, bytes: f.bytes, ms: now - f.started, drops: peer.drops.snapshot() });
    flood = undefined;
    return;
  }
  while (f.outstanding < f.window) {
    f.outstanding++;
    f.sent++;
    peer.send(icmpEcho({ src: clientIp, dst: "10.99.0.1", type: 8, id: 10, seq: f.sent & 0xffff, payload: new Uint8Array(f.size) }), now);
  }
  flushWg();
  setImmediate(floodMore);
}
// A lost echo must not stall the window: what is still out after 200 ms is written off.
setInterval(() => {
  if (flood) flood.outstanding = Math.min(flood.outstanding, flood.window / 2);
}, 200);
if (wg) setInterval(() => {
  if (!peer) return;
  peer.handleTimeout(performance.now());
  flushWg();
}, 50);
conn.onData.subscribe((data) => {
  if (peer) {
    peer.handleInput(new Uint8Array(data), { address: "0.0.0.0", port: 1 }, performance.now());
    flushWg();
  } else out({ kind: "data", text: data.toString() });
});
conn.stateChanged.subscribe((state) => out({ kind: "state", state }));

await conn.gatherCandidates();
out({ kind: "hello", ufrag: conn.localUsername, pwd: conn.localPassword, candidates: conn.localCandidates.map((c) => "candidate:" + c.toSdp()), publicKey: identity ? encodeKey(identity.publicKey) : undefined });

for await (const line of linesOf(Bun.stdin.stream())) {
  const msg = JSON.parse(line) as { kind: string; ufrag?: string; pwd?: string; candidates?: string[]; text?: string; gatewayPublicKey?: string; count?: number; dst?: string };
  if (msg.kind === "remote") {
    const started = performance.now();
    if (identity && msg.gatewayPublicKey) {
      peer = new WirePeer({ aead: nobleAead, local: identity, remoteStatic: decodeKey(msg.gatewayPublicKey), connectionId: 77, endpoint: { address: "0.0.0.0", port: 1 }, random });
    }
    conn.setRemoteParams({ iceLite: false, usernameFragment: msg.ufrag!, password: msg.pwd! });
    for (const c of msg.candidates!) await conn.addRemoteCandidate(Candidate.fromSdp(c.replace(/^candidate:/, "")));
    await conn.addRemoteCandidate(undefined);
    conn
      .connect()
      .then(() => {
        const p = conn.nominated!;
        out({ kind: "connected", ms: performance.now() - started, local: `${p.localCandidate.type} ${p.localCandidate.host}:${p.localCandidate.port}`, remote: `${p.remoteCandidate.type} ${p.remoteCandidate.host}:${p.remoteCandidate.port}` });
      })
      .catch((err: unknown) => out({ kind: "failed", err: String(err) }));
  } else if (msg.kind === "ping") {
    for (let i = 0; i < (msg.count ?? 1); i++) peer?.send(icmpEcho({ src: clientIp, dst: msg.dst ?? "10.99.0.1", type: 8, id: 9, seq: i + 1, payload: new Uint8Array(32).fill(i) }), performance.now());
    flushWg();
  } else if (msg.kind === "flood") {
    const m = msg as unknown as { ms: number; size: number; window: number };
    const now = performance.now();
    flood = { until: now + m.ms, size: m.size, window: m.window, outstanding: 0, sent: 0, replies: 0, bytes: 0, started: now };
    floodMore();
  } else if (msg.kind === "send") {
    await conn.send(Buffer.from(msg.text!));
  } else if (msg.kind === "close") {
    await conn.close();
    process.exit(0);
  }
}
