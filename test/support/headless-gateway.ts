// A gateway double for the headless client's netns test, until `glassgate up --portal` (h-portalup)
// and ICE inside GatewayNode (h-icenode) land: the portal's `gateway` topic (PortalSocket), a
// GatewayNode (WireGuard; policy-free) over one Bun UDP socket and a TUN, and one controlled
// IceAgent per client with STUN demultiplexed before the node — what the real gateway will do,
// in the smallest form. JSON lines on stdout: {kind:"joined"}, {kind:"authorized", client},
// {kind:"nominated", client, pair}, {kind:"goodbye_sent", client}.
// Env: PORTAL_URL, TOKEN, HOST_ADDRESS (our host candidate), TUN_NAME.
import { hostname } from "node:os";
import { execFileSync } from "node:child_process";
import { nobleAead } from "../../src/crypto/aead-noble.ts";
import { decodeKey, encodeKey, generateKeyPair } from "../../src/crypto/x25519.ts";
import { IceAgent } from "../../src/ice/agent.ts";
import { localCandidate } from "../../src/ice/candidate.ts";
import { looksLikeStun } from "../../src/ice/stun.ts";
import { PortalSocket } from "../../src/io/portal-socket.ts";
import { TunReader } from "../../src/io/tun-reader.ts";
import { TunDevice } from "../../src/io/tun.ts";
import { parseCidr } from "../../src/ip/address.ts";
import { DatagramBatch, GatewayNode, TunBatch } from "../../src/node/index.ts";
import { gatewayChannel, loginUrl, type GatewayEgress, type GatewayIngress } from "../../src/portal/index.ts";
import { Tunnel } from "../../src/tunnel/index.ts";
import { randomBytes } from "../../src/crypto/x25519.ts";

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");
const now = () => performance.timeOrigin + performance.now();
const host = process.env.HOST_ADDRESS!;
const keys = generateKeyPair();
const tunnel = new Tunnel({ aead: nobleAead, privateKey: keys.privateKey, random: randomBytes });
const node = new GatewayNode({ tunnel });
const agents = new Map<string, { agent: IceAgent; cid: number; publicKey: Uint8Array }>();
const tunOut = new TunBatch(64);
const udpOut = new DatagramBatch(64);
let tun: TunDevice | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;

const socket = await Bun.udpSocket({
  hostname: "0.0.0.0",
  socket: {
    data(_s, pooled, port, address) {
      const from = { address, port };
      const buf = new Uint8Array(pooled); // the parsers read from offset 0; Bun's view is into a pool
      if (looksLikeStun(buf)) {
        for (const { agent } of agents.values()) if (agent.handleInput(buf, from, { address: host, port: socket.port }, now()) === "consumed") break;
      } else {
        tunOut.clear();
        node.handleNetworkInput(buf, 0, buf.length, from, now(), tunOut);
        for (let i = 0; i < tunOut.count; i++) tun?.writeAt(tunOut.data, tunOut.offset(i), tunOut.lengths[i]!);
        for (const { agent } of agents.values()) agent.noteTraffic(now());
      }
      pump();
    },
    error() {},
  },
});

function sendUdp(data: Uint8Array, to: { address: string; port: number }): void {
  for (let i = 0; i < 3; i++) {
    try {
      socket.send(data, to.port, to.address);
      return;
    } catch {}
  }
}

function pump(): void {
  udpOut.clear();
  node.drainTransmits(udpOut);
  for (let i = 0; i < udpOut.count; i++) sendUdp(udpOut.data.subarray(udpOut.offset(i), udpOut.offset(i) + udpOut.lengths[i]!), udpOut.to[i]!);
  for (let e = node.pollEvent(); e; e = node.pollEvent()) void e;
  let next = node.pollTimeout() ?? Infinity;
  for (const [client, a] of agents) {
    for (let t = a.agent.pollTransmit(); t; t = a.agent.pollTransmit()) sendUdp(t.data, t.to);
    for (let e = a.agent.pollEvent(); e; e = a.agent.pollEvent()) {
      if (e.kind === "nominated") out({ kind: "nominated", client, pair: `${e.pair.local.type} ${e.pair.local.address}:${e.pair.local.port} <- ${e.pair.remote.type} ${e.pair.remote.address}:${e.pair.remote.port}` });
    }
    next = Math.min(next, a.agent.pollTimeout() ?? Infinity);
  }
  if (timer) clearTimeout(timer);
  if (Number.isFinite(next)) {
    timer = setTimeout(() => {
      const t = now();
      node.handleTimeout(t);
      for (const a of agents.values()) a.agent.handleTimeout(t);
      pump();
    }, Math.max(0, Math.min(next - now(), 30_000)));
  }
}

const portal: PortalSocket<GatewayIngress, GatewayEgress> = new PortalSocket({
  channel: gatewayChannel({ random: Math.random }),
  url: () => loginUrl({ apiUrl: process.env.PORTAL_URL!, token: process.env.TOKEN!, id: "gw-double", name: hostname(), publicKey: encodeKey(keys.publicKey) }),
  userAgent: "Debian/13 gateway/0.1.0 (x86_64)",
  onEvent(ev) {
    if (ev.kind === "joined") out({ kind: "joined" });
    if (ev.kind !== "message") return;
    const m = ev.message;
    const t = now();
    if (m.event === "init" && !tun) {
      tun = TunDevice.open(process.env.TUN_NAME ?? "ggw0");
      execFileSync("ip", ["addr", "add", `${m.payload.interface.ipv4}/32`, "dev", tun.name]);
      execFileSync("ip", ["link", "set", tun.name, "mtu", "1280", "up"]);
      execFileSync("ip", ["route", "add", "100.64.0.0/10", "dev", tun.name]);
      const onReadable = () => {
          for (;;) {
            reader.ring.drain(64, (data, off, len) => {
              udpOut.clear();
              node.handleTunInput(data, off, len, now(), udpOut);
              for (let i = 0; i < udpOut.count; i++) sendUdp(udpOut.data.subarray(udpOut.offset(i), udpOut.offset(i) + udpOut.lengths[i]!), udpOut.to[i]!);
            });
            if (reader.ring.sleep()) break;
          }
          pump();
      };
      const reader: TunReader = new TunReader(tun.fd, 1280, { onReadable });
      onReadable(); // the worker wakes us only once we said we sleep (ring.sleep)
    } else if (m.event === "authorize_flow") {
      const p = m.payload;
      const publicKey = decodeKey(p.client.public_key);
      const conn = tunnel.upsertPeer({ publicKey, presharedKey: decodeKey(p.client.preshared_key), allowedIPs: [parseCidr(`${p.client.ipv4}/32`)] });
      const agent = new IceAgent({ local: { ufrag: p.gateway_ice_credentials.username, pwd: p.gateway_ice_credentials.password }, remote: { ufrag: p.client_ice_credentials.username, pwd: p.client_ice_credentials.password }, now: t, cid: p.client.id });
      agent.addLocalCandidate(localCandidate("host", host, socket.port), t);
      agents.set(p.client.id, { agent, cid: conn.cid, publicKey });
      portal.send({ event: "flow_authorized", payload: { ref: p.ref } });
      portal.send({ event: "broadcast_ice_candidates", payload: { client_ids: [p.client.id], candidates: agent.signalledCandidates() } });
      out({ kind: "authorized", client: p.client.id });
    } else if (m.event === "ice_candidates") {
      const a = agents.get(m.payload.client_id);
      if (a) for (const c of m.payload.candidates) a.agent.addRemoteCandidateText(c, t);
    } else if (m.event === "reject_access") {
      const a = agents.get(m.payload.client_id);
      if (a) {
        node.goodbyeTo(a.cid, t);
        pump(); // the goodbye goes out before the peer is forgotten
        tunnel.removePeer(a.publicKey);
        agents.delete(m.payload.client_id);
        out({ kind: "goodbye_sent", client: m.payload.client_id });
      }
    }
    pump();
  },
});
portal.start();
process.on("SIGTERM", () => process.exit(0));
