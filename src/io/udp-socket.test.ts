import { afterEach, expect, test } from "bun:test";
import { DatagramBatch } from "../node/batches.ts";
import type { Endpoint } from "../wire/index.ts";
import type { Sysctls } from "./udp.ts";
import { GatewayUdp, GRO_SLOT, type GatewayUdpOptions } from "./udp-socket.ts";

// Limits high enough that nothing is written to /proc: the sizing logic has its own tests (udp.test.ts).
const sysctls: Sysctls = { read: () => String(1 << 30), write: () => {} };
const opened: GatewayUdp[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

interface Received {
  from: Endpoint;
  bytes: Uint8Array;
}

async function open(opts: Partial<GatewayUdpOptions> = {}, into: Received[] = []): Promise<{ sock: GatewayUdp; got: Received[] }> {
  const sock = await GatewayUdp.open({
    port: 0,
    bindV4: "127.0.0.1",
    ipv6: false,
    sysctls,
    onDatagram: (buf, off, len, from) => into.push({ from, bytes: buf.slice(off, off + len) }),
    ...opts,
  });
  opened.push(sock);
  return { sock, got: into };
}

/** Payload of datagram `seq`: every byte depends on seq and position, so a mix-up or a cut shows. */
function fill(buf: Uint8Array, at: number, len: number, seq: number): void {
  for (let i = 0; i < len; i++) buf[at + i] = (seq * 31 + i * 7) & 0xff;
  if (len >= 4) new DataView(buf.buffer, buf.byteOffset + at, 4).setUint32(0, seq);
}

function check(got: Received[], lengths: number[]): void {
  expect(got.length).toBe(lengths.length);
  got.forEach((d, seq) => {
    expect(d.bytes.length).toBe(lengths[seq]!);
    const want = new Uint8Array(lengths[seq]!);
    fill(want, 0, want.length, seq);
    if (!Buffer.from(d.bytes).equals(Buffer.from(want))) throw new Error(`datagram ${seq} arrived changed`);
  });
}

/** Sends datagrams of these lengths to `to`, in batches of `batch.capacity`. */
function sendAll(sock: GatewayUdp, to: Endpoint, lengths: number[], batch = new DatagramBatch(256, 2048)): number {
  let sent = 0;
  for (let seq = 0; seq < lengths.length; seq++) {
    if (batch.full) {
      sent += sock.sendBatch(batch);
      batch.clear();
    }
    fill(batch.data, batch.next(), lengths[seq]!, seq);
    batch.commit(lengths[seq]!, to);
  }
  sent += sock.sendBatch(batch);
  batch.clear();
  return sent;
}

/** Waits (bounded, not timed: the assertions after it decide) until `cond` holds. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await Bun.sleep(5);
}

test("thousands of datagrams arrive intact and in order, both ways at once, from one shared endpoint", async () => {
  const a = await open();
  const b = await open();
  const lengths = Array.from({ length: 3000 }, (_, i) => 60 + ((i * 37) % 1400));
  expect(sendAll(a.sock, { address: "127.0.0.1", port: b.sock.port }, lengths)).toBe(3000);
  expect(sendAll(b.sock, { address: "127.0.0.1", port: a.sock.port }, lengths)).toBe(3000);
  await until(() => a.got.length >= 3000 && b.got.length >= 3000);
  check(b.got, lengths);
  check(a.got, lengths);
  expect(b.got[0]!.from).toEqual({ address: "127.0.0.1", port: a.sock.port });
  // One object for one source: the cores compare it, nobody allocates one per datagram.
  expect(b.got.every((d) => d.from === b.got[0]!.from)).toBe(true);
  expect(a.sock.dropped + a.sock.errors + b.sock.dropped + b.sock.errors).toBe(0);
  // Counted for the metrics: at least one recvmmsg, never more calls than datagrams.
  expect(b.sock.recvSyscalls).toBeGreaterThan(0);
  expect(b.sock.recvSyscalls).toBeLessThanOrEqual(b.got.length);
});

test("a GSO send is one syscall and reaches a receiver without GRO as the separate datagrams", async () => {
  const rx = await open({ gro: false });
  const tx = await open();
  if (!tx.sock.gso) return console.warn("skipped: this kernel has no UDP GSO");
  const lengths = [...Array<number>(99).fill(1000), 300];
  expect(sendAll(tx.sock, { address: "127.0.0.1", port: rx.sock.port }, lengths)).toBe(100);
  expect(tx.sock.sendSyscalls).toBe(1);
  await until(() => rx.got.length >= 100);
  check(rx.got, lengths);
  expect(rx.sock.coalesced).toBe(0);
});

test("with GRO the receiver gets super-datagrams and splits them at the segment size the kernel reports", async () => {
  const rx = await open({ gro: true });
  const tx = await open();
  if (!tx.sock.gso || !rx.sock.gro) return console.warn("skipped: this kernel has no UDP GSO/GRO");
  // Three runs (lengths change between them), each ending shorter: the kernel keeps each run as one.
  const lengths = [...Array<number>(40).fill(1200), 100, ...Array<number>(30).fill(1420), ...Array<number>(20).fill(800), 799];
  sendAll(tx.sock, { address: "127.0.0.1", port: rx.sock.port }, lengths);
  await until(() => rx.got.length >= lengths.length);
  check(rx.got, lengths);
  expect(rx.sock.coalesced).toBeGreaterThanOrEqual(2);
});

test("IPv6: datagrams to ::1 arrive from ::1 on the IPv6 socket, and a batch may mix both families", async () => {
  const rx = await open({ ipv6: true, bindV6: "::1" });
  const tx = await open({ ipv6: true, bindV6: "::1" });
  const v6: Endpoint = { address: "::1", port: rx.sock.port };
  const v4: Endpoint = { address: "127.0.0.1", port: rx.sock.port };
  const batch = new DatagramBatch(64, 2048);
  const lengths: number[] = [];
  for (let seq = 0; seq < 60; seq++) {
    lengths.push(500);
    fill(batch.data, batch.next(), 500, seq);
    batch.commit(500, seq % 3 === 0 ? v4 : v6);
  }
  expect(tx.sock.sendBatch(batch)).toBe(60);
  await until(() => rx.got.length >= 60);
  expect(rx.got.length).toBe(60);
  // Order holds per family (one socket each); every datagram is intact.
  const bySeq = rx.got.map((d) => new DataView(d.bytes.buffer).getUint32(0)).sort((x, y) => x - y);
  expect(bySeq).toEqual(lengths.map((_, i) => i));
  const fromV6 = rx.got.filter((d) => d.from.address === "::1");
  expect(fromV6.length).toBe(40);
  expect(fromV6[0]!.from.port).toBe(tx.sock.port);
  const seqsV6 = fromV6.map((d) => new DataView(d.bytes.buffer).getUint32(0));
  expect(seqsV6).toEqual([...seqsV6].sort((x, y) => x - y));
});

test("without GSO (the fallback) the same datagrams arrive the same way, still one sendmmsg per batch", async () => {
  const rx = await open({ gro: true });
  const tx = await open({ gso: false });
  expect(tx.sock.gso).toBe(false);
  const lengths = [...Array<number>(99).fill(1000), 300];
  sendAll(tx.sock, { address: "127.0.0.1", port: rx.sock.port }, lengths);
  expect(tx.sock.sendSyscalls).toBe(1);
  await until(() => rx.got.length >= 100);
  check(rx.got, lengths);
  expect(rx.sock.coalesced).toBe(0);
});

test("the control path: one datagram with send(), and an endpoint that is no address is counted, not thrown", async () => {
  const rx = await open();
  const tx = await open();
  const msg = new Uint8Array(148);
  fill(msg, 0, 148, 0);
  tx.sock.send(msg, { address: "127.0.0.1", port: rx.sock.port });
  tx.sock.send(msg, { address: "not-an-address", port: 1 });
  await until(() => rx.got.length >= 1);
  check(rx.got, [148]);
  expect(tx.sock.dropped).toBe(1);
  expect(tx.sock.errors).toBe(1);
});

test("a full ring holds the receiver back without losing or mixing up datagrams", async () => {
  let readable = 0;
  const rx = await open({ gro: false, ringSlots: 8, onReadable: () => readable++ });
  const tx = await open();
  const lengths = Array.from({ length: 50 }, (_, i) => 100 + i);
  sendAll(tx.sock, { address: "127.0.0.1", port: rx.sock.port }, lengths);
  await until(() => rx.sock.pending >= 8 && readable > 0);
  expect(rx.sock.pending).toBe(8); // full, not overwritten; the rest waits in the kernel
  expect(readable).toBe(1); // one wake-up while we slept, none per datagram
  // Drain in small steps; the worker refills behind us.
  for (let i = 0; i < 2000 && rx.got.length < 50; i++) {
    if (rx.sock.drain(3) === 0) await Bun.sleep(2);
  }
  check(rx.got, lengths);
  expect(rx.sock.dropped).toBe(0);
});

test("the shell's buffer report reads the new socket as it reads the old one", async () => {
  const { reportSocketBuffers } = await import("./udp.ts");
  const { sock } = await open();
  const lines: string[] = [];
  const log = { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(`warn ${m}`) };
  reportSocketBuffers(sock, { recv: 8 << 20, send: 8 << 20 }, log as never);
  expect(lines.slice(0, 2)).toEqual(["socket buffer limit", "socket buffer limit"]);
  expect(sock.buffers.recv).toBeGreaterThan(0);
});

test("GRO ring slots hold a 64 KiB super-datagram, stay cache-line aligned, and do not start a power of two apart", () => {
  expect(GRO_SLOT).toBeGreaterThanOrEqual(65536);
  expect(GRO_SLOT % 64).toBe(0);
  // Lines per slot not a multiple of 64 (a 32 KiB 8-way L1 has 64 sets): slot starts spread over the sets.
  expect((GRO_SLOT / 64) % 64).not.toBe(0);
});

// Sticky source on loopback: a datagram to 127.0.0.2 is answered from 127.0.0.2, although the route
// back to 127.0.0.1 prefers 127.0.0.1 as source (what a floating address looks like to the kernel).
async function stickyEcho(opts: Partial<GatewayUdpOptions>, via: "send" | "batch", lengths = [100]): Promise<{ sock: GatewayUdp; sources: string[] }> {
  const dgram = await import("node:dgram");
  const batch = new DatagramBatch(64, 2048);
  let sock!: GatewayUdp;
  const opened = await open({
    bindV4: "0.0.0.0",
    onDatagram: (buf, off, len, received) => {
      const from = { address: received.address, port: received.port }; // the cores copy endpoints: by value must do
      if (via === "send") sock.send(buf.slice(off, off + len), from);
      else {
        for (const l of lengths) {
          batch.data.set(buf.subarray(off, off + Math.min(len, l)), batch.next());
          batch.commit(l, from);
        }
        sock.sendBatch(batch);
        batch.clear();
      }
    },
    ...opts,
  });
  sock = opened.sock;
  const client = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => client.bind(0, "127.0.0.1", resolve));
  const sources: string[] = [];
  client.on("message", (_m, rinfo) => sources.push(`${rinfo.address}:${rinfo.port}`));
  client.send(new Uint8Array(100), sock.port, "127.0.0.2");
  for (let i = 0; i < 400 && sources.length < lengths.length; i++) await Bun.sleep(5);
  client.close();
  return { sock, sources };
}

test("a reply leaves from the address the datagram arrived on, not the route's preferred source", async () => {
  const one = await stickyEcho({}, "send");
  expect(one.sock.sticky).toBe(true);
  expect(one.sources).toEqual([`127.0.0.2:${one.sock.port}`]);
  const batch = await stickyEcho({ gro: false }, "batch", [100, 100]);
  expect(batch.sources).toEqual([`127.0.0.2:${batch.sock.port}`, `127.0.0.2:${batch.sock.port}`]);
});

test("a GSO run carries the sticky source beside its segment size: every segment leaves from the arrival address", async () => {
  const { sock, sources } = await stickyEcho({}, "batch", [1000, 1000, 1000, 400]);
  if (!sock.gso) return void console.warn("no UDP GSO on this kernel: the combined cmsg is not exercised");
  expect(sources).toEqual(Array(4).fill(`127.0.0.2:${sock.port}`));
  expect(sock.sendSyscalls).toBe(1);
});

test("a socket bound to one address is not made sticky and answers from it as before", async () => {
  const { sock, sources } = await stickyEcho({ bindV4: "127.0.0.2" }, "send");
  expect(sock.sticky).toBe(false);
  expect(sources).toEqual([`127.0.0.2:${sock.port}`]);
});

test("answerFrom: a conversation this gateway starts leaves from the given local address, not the route's preferred source", async () => {
  const dgram = await import("node:dgram");
  const { sock } = await open({ bindV4: "0.0.0.0" });
  const client = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => client.bind(0, "127.0.0.1", resolve));
  const sources: string[] = [];
  client.on("message", (_m, rinfo) => sources.push(rinfo.address));
  const to = { address: "127.0.0.1", port: client.address().port };
  try {
    expect(sock.sticky).toBe(true);
    sock.send(new Uint8Array(8), to); // never heard from: the kernel picks the source
    expect(sock.answerFrom(to, "127.0.0.2")).toBe(true);
    sock.send(new Uint8Array(8), to);
    for (let i = 0; i < 400 && sources.length < 2; i++) await Bun.sleep(5);
    expect(sources).toEqual(["127.0.0.1", "127.0.0.2"]);
    expect(sock.answerFrom(to, "not-an-address")).toBe(false);
  } finally {
    client.close();
  }
});

/** A WireGuard-shaped datagram: `type` in the first byte (4 = transport data), then its sequence number. */
function typed(batch: DatagramBatch, type: number, seq: number, to: Endpoint): void {
  const at = batch.next();
  batch.data.fill(0, at, at + 64);
  batch.data[at] = type;
  new DataView(batch.data.buffer, batch.data.byteOffset + at + 4, 4).setUint32(0, seq);
  batch.commit(64, to);
}

test("the kernel's receive time travels with each datagram: the queue delay is how long it really waited", async () => {
  const rx = await open({ gro: false, onReadable: () => {} });
  expect(rx.sock.aqm).toBe(true);
  const tx = await open();
  const b = new DatagramBatch(16, 2048);
  for (let i = 0; i < 10; i++) typed(b, 1, i, { address: "127.0.0.1", port: rx.sock.port });
  const sentAt = Date.now();
  tx.sock.sendBatch(b);
  await until(() => rx.sock.pending === 10);
  await Bun.sleep(60);
  expect(rx.sock.drain()).toBe(10);
  // Measured from the kernel's timestamp, not from when the worker saw it: at least the 60 ms it
  // sat, at most the time since it was sent (plus Date.now()'s truncation to the ms).
  expect(rx.sock.queueDelayMs).toBeGreaterThanOrEqual(59);
  expect(rx.sock.queueDelayMs).toBeLessThanOrEqual(Date.now() - sentAt + 1);
  expect(rx.sock.aqmDropped).toBe(0); // one batch above target is not a standing queue
});

/**
 * Keeps a standing queue of `backlog` ticks in front of the receiver for `ticks` ticks of 5 ms:
 * each tick sends one handshake-type and three data datagrams and drains four. Returns what arrived.
 */
async function standingQueue(rx: GatewayUdp, tx: GatewayUdp, backlog: number, ticks: number): Promise<{ sent: number[]; got: number[] }> {
  const to = { address: "127.0.0.1", port: rx.port };
  const sent = [0, 0, 0, 0, 0];
  const got = [0, 0, 0, 0, 0];
  const b = new DatagramBatch(16, 2048);
  const sendTick = () => {
    typed(b, 1, sent[1]!++, to);
    for (let i = 0; i < 3; i++) typed(b, 4, sent[4]!++, to);
    tx.sendBatch(b);
    b.clear();
  };
  const take = (budget: number) => rx.drain(budget, (buf, off) => void got[buf[off]!]!++);
  for (let i = 0; i < backlog; i++) {
    sendTick();
    await Bun.sleep(5);
  }
  for (let i = 0; i < ticks; i++) {
    sendTick();
    take(4);
    await Bun.sleep(5);
  }
  // The rest: until nothing more arrives (every datagram sent is in the ring or already taken).
  for (let i = 0; i < 2000 && (take(1000) > 0 || rx.pending > 0 || got[1]! < sent[1]!); i++) await Bun.sleep(5);
  return { sent, got };
}

test("a standing receive queue: CoDel drops data packets (never handshakes) until it drains, and says how many", async () => {
  const rx = await open({ gro: false, onReadable: () => {} });
  const tx = await open();
  // 20 ticks of backlog (~100 ms of waiting, far above the 5 ms target) kept for 100 ticks (~500 ms).
  const { sent, got } = await standingQueue(rx.sock, tx.sock, 20, 100);
  expect(got[1]).toBe(sent[1]!); // every handshake-type datagram arrived
  expect(rx.sock.aqmDropped).toBeGreaterThan(0);
  expect(got[4]! + rx.sock.aqmDropped).toBe(sent[4]!); // each data datagram arrived or was counted as dropped
});

test("with the queue discipline off (GLASSGATE_AQM=0) the same standing queue loses nothing", async () => {
  const rx = await open({ gro: false, aqm: false, onReadable: () => {} });
  const tx = await open();
  expect(rx.sock.aqm).toBe(false);
  const { sent, got } = await standingQueue(rx.sock, tx.sock, 20, 100);
  expect(got[1]).toBe(sent[1]!);
  expect(got[4]).toBe(sent[4]!);
  expect(rx.sock.aqmDropped).toBe(0);
  expect(rx.sock.queueDelayMs).toBe(0); // not measured
});
