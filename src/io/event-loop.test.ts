import { expect, test } from "bun:test";
import { parseCidr } from "../ip/address.ts";
import { GOODBYE_EVENT } from "../tunnel/index.ts";
import type { Transmit } from "../wire/index.ts";
import { GATEWAY, TunnelClients } from "../../test/support/tunnel-clients.ts";
import { EBADFD, EIO, OsError } from "./errno.ts";
import { icmpEcho } from "../../test/support/icmp.ts";
import { Captures } from "./capture.ts";
import { EventLoop, type BatchedUdp } from "./event-loop.ts";
import { checksumsValid, superPacket, tcpPacket } from "../ip/fixtures/offload-packets.ts";
import { VNET_HDR_LEN } from "../ip/vnet-header.ts";
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
    tun: { writeAt: () => undefined } as unknown as TunDevice,
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

/** A loop over one connected client whose TUN writes fail with `errno` (undefined: succeed). */
async function loopWithFailingTun(errno: () => number | undefined) {
  const sim = new TunnelClients();
  const a = sim.client();
  sim.gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr(`${a.ip}/32`)] });
  sim.ping(a);
  const fatal: unknown[] = [];
  const batchErrors: unknown[][] = [];
  const tun = {
    name: "ggtest0",
    writeAt: () => {
      const e = errno();
      if (e !== undefined) throw new Error("writing TUN ggtest0", { cause: new OsError("write", e) });
    },
  } as unknown as TunDevice;
  const loop = new EventLoop({ tunnel: sim.gw, tun, clock: () => sim.now, onEvent: () => undefined, onBatchErrors: (e) => void batchErrors.push(e), onFatal: (err) => fatal.push(err) });
  const reader = { ring: { drain: () => 0, pending: 0, sleep: () => true } } as unknown as TunReader;
  loop.attach({ send: () => undefined } as unknown as UdpSockets, reader);
  await hops();
  /** The client sends one ping through the loop. */
  const ping = async (seq: number) => {
    a.peer.send(new Uint8Array([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 99, 0, 2, 10, 50, 0, seq, 8, 0, 0, 0, 0, 1, 0, seq]), sim.now);
    loop.onDatagram(a.peer.pollTransmit()!.data, a.addr);
    await hops();
  };
  return { loop, fatal, batchErrors, ping };
}

test("a TUN write that fails because the interface was deleted (EBADFD) is fatal, naming the interface", async () => {
  const { loop, fatal, batchErrors, ping } = await loopWithFailingTun(() => EBADFD);
  await ping(1);
  expect(fatal).toHaveLength(1);
  expect((fatal[0] as Error).message).toBe("TUN ggtest0 is gone");
  expect(((fatal[0] as Error).cause as Error).message).toBe("writing TUN ggtest0");
  expect(batchErrors).toEqual([]);
  expect(loop.stats.tunWriteErrors).toBe(1);
});

test("a TUN write that fails while the link is down (EIO) loses that packet only; the loop keeps going", async () => {
  let failing = true;
  const { loop, fatal, batchErrors, ping } = await loopWithFailingTun(() => (failing ? EIO : undefined));
  await ping(1);
  failing = false;
  await ping(2);
  expect(fatal).toEqual([]);
  expect(batchErrors.flat().map((e) => ((e as Error).cause as Error).message)).toEqual(["write: EIO"]);
  expect(loop.stats).toMatchObject({ tunWriteErrors: 1, tunOut: 1 });
});

test("reads from a TUN that is gone make the loop fail with the errno named; errors before it are counted", async () => {
  const sim = new TunnelClients();
  const fatal: unknown[] = [];
  const reported: number[] = [];
  const loop = new EventLoop({
    tunnel: sim.gw,
    tun: { name: "ggtest0" } as unknown as TunDevice,
    clock: () => sim.now,
    onEvent: () => undefined,
    onBatchErrors: () => undefined,
    onFatal: (err) => fatal.push(err),
    onTunReadError: (f) => void reported.push(f.consecutive),
  });
  loop.onTunReadError({ kind: "read_error", errno: EIO, consecutive: 1, lost: false });
  expect(fatal).toEqual([]);
  loop.onTunReadError({ kind: "read_error", errno: EBADFD, consecutive: 2, lost: true });
  expect(fatal.map((e) => (e as Error).message)).toEqual(["TUN ggtest0 is gone: reading the TUN fails with EBADFD (2 in a row)"]);
  expect(reported).toEqual([1, 2]);
  expect(loop.stats.tunReadErrors).toBe(2);
});

test("a capture copies its connection's packets both ways, and no other; with none running the tap is never called", async () => {
  const sim = new TunnelClients();
  const a = sim.client();
  const b = sim.client();
  const ca = sim.gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr(`${a.ip}/32`)] });
  sim.gw.upsertPeer({ publicKey: b.local.publicKey, allowedIPs: [parseCidr(`${b.ip}/32`)] });
  sim.ping(a);
  sim.ping(b);
  let taps = 0;
  const captures = new (class extends Captures {
    override tap(cid: number, p: Uint8Array, n: number, now: number): void {
      taps++;
      super.tap(cid, p, n, now);
    }
  })();
  const toTun: Uint8Array[] = [];
  const reply = (c: typeof a, seq: number) => icmpEcho({ src: "10.50.0.9", dst: c.ip, type: 0, id: 1, seq, payload: Uint8Array.of(seq) });
  let fromNetwork: Uint8Array[] = [];
  const reader = {
    ring: {
      drain: (_max: number, f: (d: Uint8Array, o: number, l: number) => void) => {
        const batch = fromNetwork;
        fromNetwork = [];
        for (const p of batch) f(p, 0, p.length);
        return batch.length;
      },
      get pending() {
        return fromNetwork.length;
      },
      sleep: () => true,
    },
  } as unknown as TunReader;
  const loop = new EventLoop({
    tunnel: sim.gw,
    tun: { writeAt: (p: Uint8Array, o: number, n: number) => void toTun.push(p.slice(o, o + n)) } as unknown as TunDevice,
    clock: () => sim.now,
    onEvent: () => undefined,
    onBatchErrors: () => undefined,
    captures,
  });
  loop.attach({ send: () => undefined } as unknown as UdpSockets, reader);
  const exchange = async (seq: number) => {
    for (const c of [a, b]) {
      c.peer.send(icmpEcho({ src: c.ip, dst: "10.50.0.9", type: 8, id: 1, seq, payload: Uint8Array.of(seq) }), sim.now);
      loop.onDatagram(c.peer.pollTransmit()!.data, c.addr);
    }
    fromNetwork = [reply(a, seq), reply(b, seq)];
    loop.wake();
    await hops();
  };

  await exchange(1);
  expect(toTun).toHaveLength(2);
  expect(taps).toBe(0); // nothing running: one size check per packet, no call, no copy

  captures.start(ca.cid, { maxPackets: 10, maxBytes: 1 << 20, maxSeconds: 60 }, sim.now, "test");
  await exchange(2);
  const c = captures.get(ca.cid)!;
  expect(c.packets).toBe(2);
  // Record 1: a's decrypted request; record 2: the reply to a, before encryption. Nothing of b's.
  expect(c.records.map((r) => [...r.subarray(16)])).toEqual([[...toTun[2]!], [...reply(a, 2)]]);
});

test("a turn hands whole batches to the flush functions: five pings in, one TUN batch of five; five replies out, one datagram batch", async () => {
  const sim = new TunnelClients();
  const a = sim.client();
  sim.gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr(`${a.ip}/32`)] });
  sim.ping(a);
  const tunBatches: number[][] = [];
  const udpBatches: { count: number; to: string[] }[] = [];
  let fromNetwork: Uint8Array[] = [];
  const reader = {
    ring: {
      drain: (_max: number, f: (d: Uint8Array, o: number, l: number) => void) => {
        const batch = fromNetwork;
        fromNetwork = [];
        // At an offset, as ring slots are.
        for (const p of batch) {
          const slot = new Uint8Array(p.length + 64);
          slot.set(p, 64);
          f(slot, 64, p.length);
        }
        return batch.length;
      },
      get pending() {
        return fromNetwork.length;
      },
      sleep: () => true,
    },
  } as unknown as TunReader;
  const loop = new EventLoop({
    tunnel: sim.gw,
    tun: { name: "ggtest0" } as unknown as TunDevice,
    clock: () => sim.now,
    onEvent: () => undefined,
    onBatchErrors: () => undefined,
    flushTun: (b) => void tunBatches.push([...b.lengths.subarray(0, b.count)]),
    flushUdp: (b) => void udpBatches.push({ count: b.count, to: b.to.slice(0, b.count).map((e) => `${e!.address}:${e!.port}`) }),
  });
  loop.attach({ send: () => undefined } as unknown as UdpSockets, reader);
  await hops();
  tunBatches.length = 0;
  udpBatches.length = 0;
  for (let seq = 1; seq <= 5; seq++) {
    a.peer.send(icmpEcho({ src: a.ip, dst: "10.50.0.9", type: 8, id: 1, seq, payload: Uint8Array.of(seq) }), sim.now);
    loop.onDatagram(a.peer.pollTransmit()!.data, a.addr);
  }
  fromNetwork = [1, 2, 3, 4, 5].map((seq) => icmpEcho({ src: "10.50.0.9", dst: a.ip, type: 0, id: 1, seq, payload: Uint8Array.of(seq) }));
  await hops();
  expect(tunBatches).toEqual([[29, 29, 29, 29, 29]]);
  expect(udpBatches).toEqual([{ count: 5, to: Array(5).fill(`${a.addr.address}:${a.addr.port}`) }]);
  expect(loop.stats).toMatchObject({ udpIn: 5, tunIn: 5, maxUdpBatch: 5, maxTunBatch: 5 });
});

test("offload mode with a batched socket: datagrams drained from its ring reach the TUN behind a vnet header; a TUN super-packet leaves as one encrypted datagram per segment in one sendBatch", async () => {
  const sim = new TunnelClients();
  const a = sim.client();
  sim.gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr(`${a.ip}/32`)] });
  sim.ping(a);
  sim.ping(a, 2); // the client's second packet confirms the session, so the gateway may send
  const writes: Uint8Array[] = [];
  const tun = { name: "ggtest0", vnetHeader: true, writeAt: (b: Uint8Array, off: number, len: number) => void writes.push(b.slice(off, off + len)) } as unknown as TunDevice;
  const loop = new EventLoop({ tunnel: sim.gw, tun, clock: () => sim.now, onEvent: () => undefined, onBatchErrors: (e) => { throw e[0]; } });
  // The batched socket: datagrams wait in a "ring" (one buffer, at offsets) until the loop drains them.
  const ring = new Uint8Array(8 * 2048);
  const waiting: { at: number; len: number }[] = [];
  const batches: number[] = [];
  const sentOut: Uint8Array[] = [];
  const udp: BatchedUdp = {
    send: () => undefined,
    sendBatch: (b) => {
      batches.push(b.count);
      for (let i = 0; i < b.count; i++) sentOut.push(b.data.slice(b.offset(i), b.offset(i) + b.lengths[i]!));
      return b.count;
    },
    drain: (budget, fn) => {
      let n = 0;
      for (; n < budget && waiting.length > 0; n++) {
        const d = waiting.shift()!;
        fn(ring, d.at, d.len, a.addr);
      }
      return n;
    },
    get pending() {
      return waiting.length;
    },
    sleep: () => waiting.length === 0,
  };
  // One read from an offload TUN: a 6-byte lead, then vnet header + a TCP super-packet of 8 segments to the client.
  const sp = superPacket(tcpPacket({ src: [10, 50, 0, 9], dst: [...parseCidr(`${a.ip}/32`).bytes], seq: 1000, payload: new Uint8Array(8 * 1200).fill(5) }), 1200);
  const slot = new Uint8Array(6 + sp.length);
  slot.set(sp, 6);
  let tunReads = 1;
  const reader = {
    ring: {
      drain: (_: number, fn: (d: Uint8Array, o: number, l: number) => void) => (tunReads-- > 0 ? (fn(slot, 6, sp.length), 1) : 0),
      get pending() {
        return tunReads > 0 ? 1 : 0;
      },
      sleep: () => true,
    },
  } as unknown as TunReader;

  a.peer.send(icmpEcho({ src: a.ip, dst: "10.50.0.9", type: 8, id: 1, seq: 3, payload: Uint8Array.of(3) }), sim.now);
  const t = a.peer.pollTransmit()!;
  ring.set(t.data, 2048 * 3);
  waiting.push({ at: 2048 * 3, len: t.data.length });
  loop.attach(udp, reader);
  await hops();

  // The ping: one write, a zero vnet header in front of the IPv4 packet.
  expect(writes).toHaveLength(1);
  expect([...writes[0]!.subarray(0, VNET_HDR_LEN)]).toEqual(Array<number>(VNET_HDR_LEN).fill(0));
  expect(writes[0]![VNET_HDR_LEN]! >> 4).toBe(4);
  // The super-packet: 8 datagrams in one batch, each a valid segment for the client.
  expect(batches).toEqual([8]);
  expect(loop.stats).toMatchObject({ tunSuperPackets: 1, tunSegments: 8 });
  const got: Uint8Array[] = [];
  for (const d of sentOut) a.peer.handleInput(d, GATEWAY, sim.now);
  for (let e = a.peer.pollEvent(); e; e = a.peer.pollEvent()) if (e.type === "data") got.push(e.packet);
  expect(got).toHaveLength(8);
  expect(got.map((p) => p.length)).toEqual(Array<number>(8).fill(20 + 20 + 1200));
  expect(got.every((p) => checksumsValid(p))).toBe(true);
  loop.stop();
});

test("offload mode: a client's in-order TCP segments drained in one turn reach the TUN as one gathered write (writeParts, no copy) the kernel would split back into them", async () => {
  const sim = new TunnelClients();
  const a = sim.client();
  sim.gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr(`${a.ip}/32`)] });
  sim.ping(a);
  sim.ping(a, 2);
  const contiguous: Uint8Array[] = [];
  const gathered: Uint8Array[] = [];
  const tun = {
    name: "ggtest0",
    vnetHeader: true,
    writeAt: (b: Uint8Array, off: number, len: number) => void contiguous.push(b.slice(off, off + len)),
    writeParts: (data: Uint8Array, offsets: Int32Array, lengths: Int32Array, first: number, count: number) => {
      const parts = Array.from({ length: count }, (_, k) => data.slice(offsets[first + k]!, offsets[first + k]! + lengths[first + k]!));
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
      gathered.push(out);
    },
  } as unknown as TunDevice;
  const loop = new EventLoop({ tunnel: sim.gw, tun, clock: () => sim.now, onEvent: () => undefined, onBatchErrors: (e) => { throw e[0]; } });
  const ring = new Uint8Array(16 * 2048);
  const waiting: { at: number; len: number }[] = [];
  const udp: BatchedUdp = {
    send: () => undefined,
    sendBatch: (b) => b.count,
    drain: (budget, fn) => {
      let n = 0;
      for (; n < budget && waiting.length > 0; n++) {
        const d = waiting.shift()!;
        fn(ring, d.at, d.len, a.addr);
      }
      return n;
    },
    get pending() {
      return waiting.length;
    },
    sleep: () => waiting.length === 0,
  };
  const reader = { ring: { drain: () => 0, pending: 0, sleep: () => true } } as unknown as TunReader;
  const src = [...parseCidr(`${a.ip}/32`).bytes];
  const segs = Array.from({ length: 5 }, (_, i) => tcpPacket({ src, dst: [10, 50, 0, 9], seq: 5000 + i * 1200, id: 300 + i, payload: new Uint8Array(1200).fill(i + 1) }));
  for (const [i, s] of segs.entries()) {
    a.peer.send(s, sim.now);
    const t = a.peer.pollTransmit()!;
    ring.set(t.data, 2048 * i);
    waiting.push({ at: 2048 * i, len: t.data.length });
  }
  loop.attach(udp, reader);
  await hops();
  expect(contiguous).toHaveLength(0);
  expect(gathered).toHaveLength(1);
  expect(loop.stats).toMatchObject({ tunCoalescedWrites: 1, tunCoalescedSegments: 5 });
  const w = gathered[0]!;
  expect(w.length).toBe(VNET_HDR_LEN + 40 + 5 * 1200);
  // What GSO makes of it: the five segments again, byte for byte.
  const { TcpSegmenter } = await import("../ip/tcp-segment.ts");
  const seg = new TcpSegmenter();
  const n = seg.begin(w, 0, w.length);
  const back: number[][] = [];
  const dst = new Uint8Array(2048);
  for (let i = 0; i < n; i++) back.push([...dst.subarray(0, seg.writeSegment(i, dst, 0))]);
  expect(back).toEqual(segs.map((s) => [...s]));
  loop.stop();
});
