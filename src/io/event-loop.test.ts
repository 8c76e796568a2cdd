import { expect, test } from "bun:test";
import { parseCidr } from "../ip/address.ts";
import { GOODBYE_EVENT } from "../tunnel/index.ts";
import type { Transmit } from "../wire/index.ts";
import { GATEWAY, TunnelClients } from "../../test/support/tunnel-clients.ts";
import { EventLoop } from "./event-loop.ts";
import type { TunDevice } from "./tun.ts";
import type { TunReader } from "./tun-reader.ts";
import type { UdpSockets } from "./udp.ts";

/** Lets queued setImmediate turns run (a bounded number of macrotask hops, no wall clock). */
async function hops(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

test("a fatal error in a turn stops the loop and is reported once; the goodbyes queued after it still go out", async () => {
  const sim = new TunnelClients();
  const a = sim.client();
  sim.gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr(`${a.ip}/32`)] });
  sim.ping(a); // connected; its handshake events wait in the tunnel for the loop's next turn
  const sent: Transmit[] = [];
  const fatal: unknown[] = [];
  const loop = new EventLoop({
    tunnel: sim.gw,
    tun: { write: () => undefined } as unknown as TunDevice,
    clock: () => sim.now,
    onEvent: () => {
      throw new Error("audit store: disk full");
    },
    onBatchErrors: () => undefined,
    onFatal: (err) => fatal.push(err),
  });
  const reader = { ring: { drain: () => 0, pending: 0, sleep: () => true } } as unknown as TunReader;
  loop.attach({ send: (data: Uint8Array, to: Transmit["to"]) => void sent.push({ data, to }) } as unknown as UdpSockets, reader);
  await hops();
  expect(fatal.map((e) => (e as Error).message)).toEqual(["audit store: disk full"]);
  const turns = loop.stats.turns;

  // Failed: nothing more is taken in or turned.
  a.peer.send(new Uint8Array(0), sim.now);
  loop.onDatagram(a.peer.pollTransmit()!.data, a.addr);
  loop.wake();
  await hops();
  expect(loop.stats.turns).toBe(turns);

  // The shell's fatal path, as on SIGTERM: goodbye to every peer, then stop() flushes them.
  expect(sim.gw.goodbye(sim.now)).toBe(1);
  loop.stop();
  expect(sent.map((t) => t.to)).toEqual([a.addr]);
  a.peer.handleInput(sent[0]!.data, GATEWAY, sim.now);
  sim.settle();
  expect(a.control).toEqual([GOODBYE_EVENT]);
});
