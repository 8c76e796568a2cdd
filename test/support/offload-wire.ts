// A "wire" between two TUN devices, for the offload integration test: reads what one TUN's kernel
// sends (super-packets in offload mode), splits it with TcpSegmenter into MTU-sized packets — what
// the gateway encrypts — then merges them again with TcpCoalescer and writes them to the other TUN,
// both ways. Run by the test as its own process (so its CPU time can be measured):
//   bun test/support/offload-wire.ts TUN_A TUN_B OFFLOAD(0|1) STOP_FILE [OFFLOAD_FLAGS]
// Prints one JSON line when both devices are open, and one with its counters after STOP_FILE appears.
import { dlopen, FFIType } from "bun:ffi";
import { existsSync } from "node:fs";
import { TunDevice } from "../../src/io/tun.ts";
import { TunBatch } from "../../src/node/batches.ts";
import { TcpCoalescer } from "../../src/ip/tcp-coalesce.ts";
import { TcpSegmenter } from "../../src/ip/tcp-segment.ts";

const [nameA, nameB, offloadArg, stopFile, flagsArg] = process.argv.slice(2);
const offload = offloadArg === "1";
const offloadFlags = flagsArg ? Number(flagsArg) : undefined;
const a = TunDevice.open(nameA!, { offload, offloadFlags });
const b = TunDevice.open(nameB!, { offload, offloadFlags });
console.log(JSON.stringify({ ready: true, a: { name: a.name, offload: a.offload, refused: a.offloadRefused }, b: { name: b.name, offload: b.offload, refused: b.offloadRefused } }));

const libc = dlopen("libc.so.6", { poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 } }).symbols;

const stats = { reads: 0, readBytes: 0, superReads: 0, segments: 0, writes: 0, writeBytes: 0, mergedWrites: 0, mergedSegments: 0, writeErrors: 0, refused: 0 };

class Direction {
  readonly seg = new TcpSegmenter();
  readonly batch = new TunBatch(256, 2048);
  readonly coal: TcpCoalescer;
  readonly readBuf = new Uint8Array(65552);
  // Reads land 6 bytes in, so the packet behind the 10-byte vnet header is word-aligned (as in the reader ring).
  readonly readView = this.readBuf.subarray(6);
  constructor(readonly from: TunDevice, readonly to: TunDevice) {
    this.coal = new TcpCoalescer(to.vnetHeader);
  }

  /** Up to 64 reads, then everything they made goes out. */
  pump(): void {
    const { from, seg, batch } = this;
    for (let r = 0; r < 64; r++) {
      if (from.vnetHeader) {
        const n = from.read(this.readView);
        if (n === 0) break;
        stats.reads++;
        stats.readBytes += n;
        const count = seg.begin(this.readBuf, 6, n);
        if (count < 0) {
          stats.refused++;
          continue;
        }
        if (count > 1) stats.superReads++;
        stats.segments += count;
        for (let i = 0; i < count; ) {
          i = seg.segmentInto(batch, i);
          if (batch.full) this.flush();
        }
      } else {
        if (batch.full) this.flush();
        const at = batch.next();
        const n = from.read(batch.data.subarray(at, at + batch.room));
        if (n === 0) break;
        stats.reads++;
        stats.readBytes += n;
        stats.segments++;
        batch.commit(n);
      }
    }
    this.flush();
  }

  flush(): void {
    const { coal, batch, to } = this;
    const n = coal.coalesce(batch);
    for (let i = 0; i < n; i++) {
      try {
        // As the gateway writes: a merged super-packet gathered from its slots (writev), no copy.
        if (coal.writeParts(i) > 1) to.writeParts(coal.data, coal.partOffsets, coal.partLengths, coal.writeFirstPart(i), coal.writeParts(i));
        else to.writeAt(coal.writeBuffer(i), coal.writeOffset(i), coal.writeLength(i));
        stats.writes++;
        stats.writeBytes += coal.writeLength(i);
      } catch {
        stats.writeErrors++;
      }
    }
    batch.clear();
  }
}

const ab = new Direction(a, b);
const ba = new Direction(b, a);
const pfd = new Uint8Array(16);
const pv = new DataView(pfd.buffer);
pv.setInt32(0, a.fd, true);
pv.setInt16(4, 1, true); // POLLIN
pv.setInt32(8, b.fd, true);
pv.setInt16(12, 1, true);
const cpu0 = process.cpuUsage();
for (let turn = 0; ; turn++) {
  const ready = libc.poll(pfd, 2, 100);
  if ((ready <= 0 || (turn & 1023) === 0) && existsSync(stopFile!)) break;
  if (ready <= 0) continue;
  if (pv.getInt16(6, true) !== 0) ab.pump();
  if (pv.getInt16(14, true) !== 0) ba.pump();
}
const cpu = process.cpuUsage(cpu0);
stats.mergedWrites = ab.coal.mergedWrites + ba.coal.mergedWrites;
stats.mergedSegments = ab.coal.mergedSegments + ba.coal.mergedSegments;
console.log(JSON.stringify({ stats, cpuSeconds: (cpu.user + cpu.system) / 1e6, userSeconds: cpu.user / 1e6 }));
a.close();
b.close();
