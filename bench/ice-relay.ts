// Throughput through a TURN relay (coturn) relative to a direct path, through the gateway's real
// data path: GatewayNode in the real EventLoop + UDP shell + TUN (test/support/ice-node-shell.ts),
// werift-ice + glassgate's WireGuard client side as the client (test/support/werift-client.ts).
// One namespace, loopback: (direct) host pair; (relay) direct UDP blocked by iptables so only the
// relayed pair through coturn works. The client keeps a window of ICMP echo requests in flight to
// the gateway's TUN address for BENCH_ICE_SECONDS; the kernel behind the TUN answers, and the
// figure is echo-reply bytes per second (both directions cross the relay). The client is
// JavaScript ICE (werift) and the limit for both cases, so the ratio is what to read, not the
// absolute numbers. Rounds alternate direct/relay; medians over BENCH_ICE_ROUNDS.
// Needs root, ip, iptables, turnserver; everything it creates is removed at the end.
import { coturn } from "../test/support/coturn-netns.ts";
import { JsonPeer } from "../test/support/json-peer.ts";
import { Netns, skipReason, uniqueTag } from "../test/support/netns.ts";

const SECONDS = Number(process.env.BENCH_ICE_SECONDS ?? 5);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ICE_ROUNDS ?? 3));
const SIZE = 1200;
const WINDOW = Number(process.env.BENCH_ICE_WINDOW ?? 32);

const skip = skipReason(["ip", "iptables", "turnserver"]);
if (skip) {
  console.log(`ice-relay bench skipped: ${skip}`);
  process.exit(0);
}

const cleanups: (() => Promise<void> | void)[] = [];
async function setup(relayOnly: boolean) {
  const ns = new Netns(`icb${relayOnly ? "r" : "d"}${uniqueTag()}`);
  cleanups.push(() => ns.destroy());
  if (relayOnly) ns.exec(["iptables", "-A", "INPUT", "-p", "udp", "-m", "multiport", "!", "--ports", "3478,3500:3560", "-j", "DROP"]);
  const turn = relayOnly ? await coturn(ns, "127.0.0.1", cleanups) : undefined;
  const gateway = new JsonPeer(ns, "gateway", "ice-node-shell.ts", { HOST_ADDRESSES: "127.0.0.1", PORT: "51820", ...(turn ? { TURN_SERVER: turn.server, TURN_USER: "gw", TURN_PASSWORD: "gw-secret" } : {}) });
  const client = new JsonPeer(ns, "werift", "werift-client.ts", { HOST_ADDRESS: "127.0.0.1", WG: "1" });
  cleanups.push(() => gateway.stop(), () => client.stop());
  const gwHello = await gateway.next("hello");
  const clHello = await client.next("hello");
  gateway.send({ kind: "client", ufrag: clHello.ufrag, pwd: clHello.pwd, publicKey: clHello.publicKey, candidates: clHello.candidates });
  const cands = await gateway.next("candidates");
  client.send({ kind: "remote", ufrag: gwHello.ufrag, pwd: gwHello.pwd, candidates: cands.candidates, gatewayPublicKey: gwHello.publicKey });
  const nominated = await gateway.next("nominated", 30_000);
  client.send({ kind: "ping", count: 1, dst: "10.99.0.1" });
  await client.next("wg_handshake", 10_000);
  return { gateway, client, path: nominated.path as string };
}

async function round(s: { client: JsonPeer; gateway: JsonPeer }): Promise<number> {
  const before = s.client.lines.filter((l) => l.kind === "flood_done").length;
  s.client.send({ kind: "flood", ms: SECONDS * 1000, size: SIZE, window: WINDOW });
  const end = performance.now() + SECONDS * 1000 + 10_000;
  while (s.client.lines.filter((l) => l.kind === "flood_done").length === before) {
    if (performance.now() > end) throw new Error("flood did not finish");
    await Bun.sleep(50);
  }
  const done = s.client.lines.filter((l) => l.kind === "flood_done")[before]!;
  if (process.env.BENCH_ICE_DEBUG) {
    const g = s.gateway;
    const n = g.lines.filter((l) => l.kind === "stats").length;
    g.send({ kind: "stats" });
    while (g.lines.filter((l) => l.kind === "stats").length === n) await Bun.sleep(20);
    const st = g.lines.filter((l) => l.kind === "stats")[n]!;
    console.log(JSON.stringify({ sent: done.sent, replies: done.replies, clientDrops: done.drops, gw: st.counters, relayBytes: st.relayBytes }));
  }
  return ((done.bytes as number) * 8) / ((done.ms as number) / 1000) / 1e6;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  const direct = await setup(false);
  const relay = await setup(true);
  console.log(`paths: direct = ${direct.path}; relay = ${relay.path}`);
  const d: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    d.push(await round(direct));
    r.push(await round(relay));
  }
  const md = median(d);
  const mr = median(r);
  console.log(`ICMP echo ${SIZE} B, window ${WINDOW}, ${SECONDS} s × ${ROUNDS} rounds (Mbit/s of replies, median):`);
  console.log(`  direct host        ${md.toFixed(1)}   [${d.map((x) => x.toFixed(1)).join(", ")}]`);
  console.log(`  relay via coturn   ${mr.toFixed(1)}   [${r.map((x) => x.toFixed(1)).join(", ")}]`);
  console.log(`  relay / direct     ${((mr / md) * 100).toFixed(0)} %`);
} finally {
  for (const c of cleanups.reverse()) await c();
}
