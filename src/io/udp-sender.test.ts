import { read } from "bun:ffi";
import { afterEach, expect, test } from "bun:test";
import { DatagramBatch } from "../node/batches.ts";
import { EADDRNOTAVAIL, EAGAIN, EINVAL, EIO, ENETUNREACH } from "./errno.ts";
import { SourceCache } from "./udp-endpoints.ts";
import { LOCAL_WORDS } from "./udp-pktinfo.ts";
import { DatagramSender, type SendCalls } from "./udp-sender.ts";
import { GatewayUdp, openUdpSocket } from "./udp-socket.ts";
import { AF_INET, errno, libc, MH_CONTROLLEN } from "./udp-sys.ts";

// Limits high enough that nothing is written to /proc, so the receiver gets its 8 MiB.
const sysctls = { read: () => String(1 << 30), write: () => {} };
const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** The kernel as on a route whose device cannot checksum GSO segments: any segmented message is EIO. */
function refusingGso(): SendCalls & { refused: number } {
  let last = 0;
  const calls = {
    refused: 0,
    sendmmsg(fd: number, mm: number, n: number, flags: number): number {
      if (read.u32(mm, MH_CONTROLLEN) !== 0) {
        calls.refused++;
        last = EIO;
        return -1;
      }
      const r = libc.sendmmsg(fd, mm, n, flags);
      last = r < 0 ? errno() : 0;
      return r;
    },
    errno: () => last,
  };
  return calls;
}

test("EIO from a GSO send turns GSO off once, says so, and resends the batch plainly without losing any", async () => {
  const got: number[] = [];
  const rx = await GatewayUdp.open({ port: 0, bindV4: "127.0.0.1", ipv6: false, sysctls, gro: false, onDatagram: (b, o) => got.push(b[o]!) });
  closers.push(() => rx.close());
  const tx = openUdpSocket(AF_INET, "127.0.0.1", 0);
  closers.push(() => libc.close(tx.fd));
  const calls = refusingGso();
  const disabled: number[] = [];
  const sender = new DatagramSender({ v4: tx.fd, v6: -1 }, true, (e) => disabled.push(e), calls);
  const batch = new DatagramBatch(64, 2048);
  const to = { address: "127.0.0.1", port: rx.port };
  for (let i = 0; i < 50; i++) {
    batch.data[batch.next()] = i;
    batch.commit(1000, to);
  }
  expect(sender.sendBatch(batch)).toBe(50);
  expect([sender.gso, sender.eioRetries, calls.refused, disabled]).toEqual([false, 1, 1, [EIO]]);
  expect(sender.sendBatch(batch)).toBe(50); // from now on plain: no second refusal
  expect(calls.refused).toBe(1);
  for (let i = 0; i < 1000 && got.length < 100; i++) await Bun.sleep(5);
  expect(got).toEqual([...Array.from({ length: 50 }, (_, i) => i), ...Array.from({ length: 50 }, (_, i) => i)]);
  expect(sender.dropped + sender.errors).toBe(0);
});

test("a GSO run ends at a new endpoint, a longer datagram, or after a shorter one", async () => {
  const lens: number[] = [];
  const rx = await GatewayUdp.open({ port: 0, bindV4: "127.0.0.1", ipv6: false, sysctls, gro: false, onDatagram: (_b, _o, l) => lens.push(l) });
  closers.push(() => rx.close());
  const tx = openUdpSocket(AF_INET, "127.0.0.1", 0);
  closers.push(() => libc.close(tx.fd));
  const runs: number[] = [];
  const calls: SendCalls = {
    sendmmsg(fd, mm, n, flags) {
      for (let m = 0; m < n; m++) runs.push(Number(read.u64(mm, m * 64 + 24))); // msg_iovlen: slots in the message
      return libc.sendmmsg(fd, mm, n, flags);
    },
    errno,
  };
  const sender = new DatagramSender({ v4: tx.fd, v6: -1 }, true, undefined, calls);
  const batch = new DatagramBatch(64, 2048);
  const a = { address: "127.0.0.1", port: rx.port };
  const b = { address: "127.0.0.1", port: rx.port }; // same value, other object: same run
  const sizes = [500, 500, 500, 200, 500, 500, 600, 600, 600];
  sizes.forEach((len, i) => batch.commit(len, i === 1 ? b : a));
  expect(sender.sendBatch(batch)).toBe(9);
  expect(runs).toEqual([4, 2, 3]);
  for (let i = 0; i < 1000 && lens.length < 9; i++) await Bun.sleep(5);
  expect(lens).toEqual(sizes);
});

test("a full send buffer: the batch waits for room and goes out; one that stays full is dropped and counted", async () => {
  const got: number[] = [];
  const rx = await GatewayUdp.open({ port: 0, bindV4: "127.0.0.1", ipv6: false, sysctls, gro: false, onDatagram: (b, o) => got.push(b[o]!) });
  closers.push(() => rx.close());
  const tx = openUdpSocket(AF_INET, "127.0.0.1", 0);
  closers.push(() => libc.close(tx.fd));
  let full = 0; // EAGAIN answers still to give
  let last = 0;
  const calls: SendCalls = {
    sendmmsg(fd, mm, n, flags) {
      if (full > 0) {
        full--;
        last = EAGAIN;
        return -1;
      }
      const r = libc.sendmmsg(fd, mm, n, flags);
      last = r < 0 ? errno() : 0;
      return r;
    },
    errno: () => last,
  };
  const sender = new DatagramSender({ v4: tx.fd, v6: -1 }, false, undefined, calls);
  const batch = new DatagramBatch(16, 2048);
  for (let i = 0; i < 10; i++) {
    batch.data[batch.next()] = i;
    batch.commit(100, { address: "127.0.0.1", port: rx.port });
  }
  full = 3;
  expect(sender.sendBatch(batch)).toBe(10);
  expect(sender.dropped).toBe(0);
  full = 1_000_000;
  expect(sender.sendBatch(batch)).toBe(0);
  expect([sender.dropped, sender.errors]).toEqual([10, 0]);
  for (let i = 0; i < 1000 && got.length < 10; i++) await Bun.sleep(5);
  expect(got).toEqual(Array.from({ length: 10 }, (_, i) => i));
});

test("a sticky source the kernel refuses (the address went away) is forgotten once and the datagrams go out without it", async () => {
  const froms: string[] = [];
  const rx = await GatewayUdp.open({ port: 0, bindV4: "127.0.0.1", ipv6: false, sysctls, gro: false, onDatagram: (_b, _o, _l, from) => froms.push(from.address) });
  closers.push(() => rx.close());
  const tx = openUdpSocket(AF_INET, "0.0.0.0", 0);
  closers.push(() => libc.close(tx.fd));
  // The receive side learnt that rx's socket reached us on 192.0.2.1, an address this host does not have (any more).
  const sources = new SourceCache(16);
  const sa = new Uint8Array(32);
  sa.set([AF_INET, 0, rx.port >> 8, rx.port & 0xff, 127, 0, 0, 1]);
  const to = sources.lookup(sa, 0)!;
  const gone = new Int32Array(LOCAL_WORDS);
  gone[0] = AF_INET;
  new Uint8Array(gone.buffer).set([192, 0, 2, 1], 8);
  sources.noteLocal(gone, 0);
  expect(sources.localAt(sa, 0)).toBeGreaterThanOrEqual(0);
  const refused: number[] = [];
  const sender = new DatagramSender({ v4: tx.fd, v6: -1 }, true);
  sender.sticky = sources;
  sender.onSourceRefused = (e) => refused.push(e);
  const batch = new DatagramBatch(16, 2048);
  for (const len of [1000, 1000, 1000, 300, 1200]) batch.commit(len, to); // a GSO run, then a message of its own
  expect(sender.sendBatch(batch)).toBe(5);
  expect([sender.sourceRetries, refused.length, sources.localAt(sa, 0)]).toEqual([1, 1, -1]);
  expect([EINVAL, EADDRNOTAVAIL, ENETUNREACH]).toContain(refused[0]!);
  expect(sender.send(new Uint8Array(10), to)).toBe(true); // the control path: no source left to refuse
  sources.noteLocal(gone, 0); // it reached us on the gone address again: one more refusal, on send()
  expect(sender.send(new Uint8Array(10), to)).toBe(true);
  expect([sender.sourceRetries, sender.errors, sender.dropped]).toEqual([2, 0, 0]);
  for (let i = 0; i < 1000 && froms.length < 7; i++) await Bun.sleep(5);
  expect(froms).toEqual(Array(7).fill("127.0.0.1"));
});
