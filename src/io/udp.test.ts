import { expect, test } from "bun:test";
import dgram from "node:dgram";
import { raiseBufferLimits, UdpSockets, type BufferLimit, type Sysctls } from "./udp.ts";

/** net.core sysctls in memory; `writable: false` answers writes as /proc does in a network namespace. */
function fakeSysctls(values: Record<BufferLimit, number>, writable = true): Sysctls & { writes: string[] } {
  const writes: string[] = [];
  return {
    writes,
    read: (name) => `${values[name]}\n`,
    write: (name, value) => {
      if (!writable) throw Object.assign(new Error(`EACCES: permission denied, open '/proc/sys/net/core/${name}'`), { code: "EACCES" });
      writes.push(`${name}=${value}`);
      values[name] = Number(value);
    },
  };
}

test("limits below the wanted size are raised, limits above it are left alone", () => {
  const sys = fakeSysctls({ rmem_max: 212992, wmem_max: 16 << 20 });
  const out = raiseBufferLimits({ recv: 8 << 20, send: 8 << 20 }, sys);
  expect(out).toEqual([
    { limit: "rmem_max", before: 212992, after: 8 << 20, result: "raised" },
    { limit: "wmem_max", before: 16 << 20, after: 16 << 20, result: "enough" },
  ]);
  expect(sys.writes).toEqual([`rmem_max=${8 << 20}`]);
});

test("a limit we may not write (a namespace, a container) is reported as not permitted, not thrown", () => {
  const out = raiseBufferLimits({ recv: 8 << 20, send: 8 << 20 }, fakeSysctls({ rmem_max: 212992, wmem_max: 212992 }, false));
  expect(out.map((o) => [o.limit, o.result, o.after])).toEqual([["rmem_max", "not_permitted", 212992], ["wmem_max", "not_permitted", 212992]]);
  expect(out[0]!.err).toContain("EACCES");
});

/** What the kernel grants a fresh socket for the same request: the independent reference. */
async function reference(size: number): Promise<{ recv: number; send: number }> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  s.setRecvBufferSize(size);
  s.setSendBufferSize(size);
  const out = { recv: s.getRecvBufferSize(), send: s.getSendBufferSize() };
  s.close();
  return out;
}

test("the buffer sizes reported are the ones in effect, and resizing at run time changes them", async () => {
  const sys = fakeSysctls({ rmem_max: 1 << 30, wmem_max: 1 << 30 });
  const udp = await UdpSockets.open({ port: 0, bindV4: "127.0.0.1", ipv6: false, onDatagram: () => {}, onError: () => {}, sysctls: sys });
  try {
    expect(udp.limits.map((l) => l.result)).toEqual(["enough", "enough"]);
    if (process.geteuid?.() === 0) {
      // 8 MiB for real even above this host's net.core.rmem_max (SO_RCVBUFFORCE); Linux reports it doubled.
      expect(udp.buffers).toEqual({ recv: 2 * (8 << 20), send: 2 * (8 << 20) });
    } else {
      expect(udp.buffers).toEqual(await reference(8 << 20));
    }
    const now = udp.resize({ recv: 256 * 1024, send: 128 * 1024 });
    const want = { recv: (await reference(256 * 1024)).recv, send: (await reference(128 * 1024)).send };
    expect(now).toEqual(want);
    expect(udp.buffers).toEqual(want);
  } finally {
    udp.close();
  }
});

test("with FIREZONE_NO_INC_BUF the kernel's defaults and limits are left alone", async () => {
  const sys = fakeSysctls({ rmem_max: 212992, wmem_max: 212992 });
  const udp = await UdpSockets.open({ port: 0, bindV4: "127.0.0.1", ipv6: false, onDatagram: () => {}, onError: () => {}, sysctls: sys, keepDefaultBuffers: true });
  const fresh = dgram.createSocket("udp4");
  await new Promise<void>((r) => fresh.bind(0, "127.0.0.1", r));
  try {
    expect(sys.writes).toEqual([]);
    expect(udp.limits).toEqual([]);
    expect(udp.buffers).toEqual({ recv: fresh.getRecvBufferSize(), send: fresh.getSendBufferSize() });
  } finally {
    fresh.close();
    udp.close();
  }
});
