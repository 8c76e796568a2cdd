// The gateway for the ICE interop tests through the real data path: GatewayNode driven by the real
// EventLoop, the real UDP shell (io/udp.ts, the one socket everything is demuxed on) and a real
// TUN device — what run.ts composes, minus the config file and the admin. Run inside a test's
// namespace (root). The portal's part is played by the test over JSON lines:
//   stdout {kind:"hello", ufrag, pwd, publicKey, port}        ready (relays allocated when TURN_SERVER is set)
//   stdin  {kind:"client", ufrag, pwd, publicKey, candidates} upsertClient + addRemoteCandidates
//   stdout {kind:"candidates", candidates}                    local_candidates for the client
//   stdout {kind:"nominated", ms, path, pair}                 ms since the client arrived
//   stdout {kind:"ice", event} / {kind:"relay", event}        the ICE/TURN timeline
//   stdin  {kind:"stats"} → stdout {kind:"stats", ...}        node counters, relay bytes, path
// Env: HOST_ADDRESSES=ip[,ip], PORT, TUN_NAME, TUN_ADDRESS (cidr), CLIENT_IP, TURN_SERVER=host:port,
//      TURN_USER, TURN_PASSWORD.
import { nobleAead } from "../../src/crypto/aead-noble.ts";
import { decodeKey, encodeKey, generatePrivateKey } from "../../src/crypto/x25519.ts";

import { EventLoop } from "../../src/io/event-loop.ts";
import { TunDevice } from "../../src/io/tun.ts";
import { TunReader } from "../../src/io/tun-reader.ts";
import { UdpSockets } from "../../src/io/udp.ts";
import { parseCidr } from "../../src/ip/address.ts";
import { GatewayNode } from "../../src/node/index.ts";
import { Logger, parseLogFilter } from "../../src/telemetry/log.ts";
import { Tunnel } from "../../src/tunnel/index.ts";
import { linesOf } from "./lines.ts";

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");
const clock = () => performance.now();
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const log = new Logger(parseLogFilter(process.env.GLASSGATE_LOG ?? "warn"));

const tunName = process.env.TUN_NAME ?? "ggice0";
const tun = TunDevice.open(tunName);
for (const cmd of [["ip", "addr", "add", process.env.TUN_ADDRESS ?? "10.99.0.1/24", "dev", tunName], ["ip", "link", "set", tunName, "up"]]) {
  const r = Bun.spawnSync(cmd);
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
}

const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(random), random });
const node = new GatewayNode({ tunnel, iceLog: log.target("ice"), turnLog: log.target("turn") });
const ice = { ufrag: randomText(8), pwd: randomText(24) };
let clientAt = 0;
let relayReady: (() => void) | undefined;

const loop = new EventLoop({
  node,
  tun,
  clock,
  onEvent: () => {},
  onBatchErrors: (errors) => process.stderr.write(`batch errors: ${errors.map(String).join("; ")}\n`),
  onIceEvent: (e) => {
    if (e.type === "local_candidates") out({ kind: "candidates", candidates: e.candidates });
    else if (e.type === "ice") {
      out({ kind: "ice", at: clock() - clientAt, event: e.event });
      if (e.event.kind === "nominated") {
        const p = e.event.pair;
        out({ kind: "nominated", ms: clock() - clientAt, path: node.pathOf(e.cid), pair: `${p.local.type} ${p.local.address}:${p.local.port} <- ${p.remote.type} ${p.remote.address}:${p.remote.port}` });
      }
    } else if (e.type === "ice_path") out({ kind: "path", path: e.path });
    else if (e.type === "relay") {
      out({ kind: "relay", event: e.event.type === "data" ? { type: "data" } : e.event });
      if (e.event.type === "allocated" || e.event.type === "failed") relayReady?.();
    }
  },
});
const udp = await UdpSockets.open({ port: Number(process.env.PORT ?? 0), ipv6: false, onDatagram: loop.onDatagram, onError: (err) => process.stderr.write(`udp: ${err.message}\n`), keepDefaultBuffers: true });
const reader = new TunReader(tun.fd, 1420, { onReadable: loop.wake, onReadError: loop.onTunReadError });
loop.attach(udp, reader);

const hosts = (process.env.HOST_ADDRESSES ?? "127.0.0.1").split(",");
node.setHostAddresses(hosts.map((address) => ({ address, port: udp.port })), clock());
const turn = process.env.TURN_SERVER;
if (turn) {
  const ready = new Promise<void>((resolve) => (relayReady = resolve));
  node.setRelays([{ id: "relay-1", addr: [{ address: turn.split(":")[0]!, port: Number(turn.split(":")[1]) }], username: process.env.TURN_USER ?? "", password: process.env.TURN_PASSWORD ?? "" }], clock());
  loop.wake();
  await Promise.race([ready, Bun.sleep(10_000)]);
}
if (process.env.DEBUG_STATS) setInterval(() => process.stderr.write(JSON.stringify({ c: node.counters, loop: loop.stats, pairs: node.ice.pairsByState(), drops: [...node.ice.all()].map((i) => i.agent.drops) }) + "\n"), 1000);
out({ kind: "hello", ufrag: ice.ufrag, pwd: ice.pwd, publicKey: encodeKey(tunnel.identity.publicKey), port: udp.port });

for await (const line of linesOf(Bun.stdin.stream())) {
  const msg = JSON.parse(line) as { kind: string; ufrag?: string; pwd?: string; publicKey?: string; candidates?: string[] };
  if (msg.kind === "client") {
    clientAt = clock();
    const publicKey = decodeKey(msg.publicKey!);
    node.upsertClient({ clientId: "client-1", publicKey, localIce: ice, remoteIce: { ufrag: msg.ufrag!, pwd: msg.pwd! }, allowedIPs: [parseCidr(`${process.env.CLIENT_IP ?? "10.99.0.2"}/32`)] }, clock());
    node.addRemoteCandidates("client-1", msg.candidates!, clock());
    loop.wake();
  } else if (msg.kind === "stats") {
    const cid = node.ice.byClient("client-1")?.cid;
    out({ kind: "stats", counters: node.counters, relayBytes: node.ice.relays.bytes(), relays: node.ice.relays.views(clock()), path: cid === undefined ? undefined : node.pathOf(cid), pairs: node.ice.pairsByState() });
  } else if (msg.kind === "close") {
    loop.stop();
    process.exit(0);
  }
}

function randomText(n: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => alphabet[b % alphabet.length]).join("");
}
