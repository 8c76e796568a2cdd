// TUN offloads against the real kernel: two namespaces, each with a TUN opened with offloads, and a
// "wire" process between them (test/support/offload-wire.ts) that reads super-packets from one TUN,
// segments them as the gateway will before encrypting, coalesces them again and writes them to the
// other. A TCP transfer across must arrive intact (sha256 on both ends), super-packets must really
// have been read and merged writes really made; then the same with offloads refused (fallback).
// The wire's reads, writes and CPU per GB are printed for the report.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { spawn, type Subprocess } from "bun";
import { TunDevice } from "../src/io/tun.ts";
import { TunReader } from "../src/io/tun-reader.ts";
import { VNET_HDR_LEN, writeZeroVnetHeader } from "../src/ip/vnet-header.ts";
import { icmpEcho, parseEcho } from "./support/icmp.ts";
import { Netns, sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip"]);
if (skip) console.warn(`skipping TUN offload test: ${skip}`);

const MB = 1024 * 1024;
const TRANSFER = Number(process.env.GLASSGATE_OFFLOAD_TEST_MB ?? 200) * MB;

/** Lines of a child's stdout, as they come. */
function lines(p: Subprocess<"ignore", "pipe", "pipe">): { all: string[]; next: (pred: (l: string) => boolean) => Promise<string> } {
  const all: string[] = [];
  void (async () => {
    let buf = "";
    for await (const chunk of p.stdout) {
      buf += new TextDecoder().decode(chunk);
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        all.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  })();
  return { all, next: (pred) => waitFor("a line from the child", () => all.find(pred), 60_000) };
}

interface WireStats {
  stats: { reads: number; readBytes: number; superReads: number; segments: number; writes: number; mergedWrites: number; mergedSegments: number; writeErrors: number; refused: number };
  cpuSeconds: number;
  userSeconds: number;
}

async function transferThroughWire(mode: "offload" | "refused", v6: boolean): Promise<{ ready: { a: { offload: string; refused?: string } }; wire: WireStats; sent: { bytes: number; sha256: string }; got: { bytes: number; sha256: string } }> {
  const tag = uniqueTag();
  const dir = mkdtempSync(`${tmpdir()}/gg-offload-`);
  const stop = `${dir}/stop`;
  const nsA = new Netns(`gg-offa-${tag}`);
  const nsB = new Netns(`gg-offb-${tag}`);
  const tunA = `ggoa${tag}`;
  const tunB = `ggob${tag}`;
  // A TUNSETOFFLOAD flag the kernel does not know (0x8000) is refused with EINVAL: the real fallback path.
  const wireArgs = ["bun", `${import.meta.dir}/support/offload-wire.ts`, tunA, tunB, "1", stop, ...(mode === "refused" ? ["0x8000"] : [])];
  const wire = spawn(wireArgs, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  try {
    const out = lines(wire);
    const ready = JSON.parse(await out.next((l) => l.includes('"ready"')));
    // The wire keeps its fds while the interfaces live in the namespaces the test made.
    for (const [ns, tun, addr4, addr6] of [[nsA, tunA, "10.77.0.1/24", "fd77::1/64"], [nsB, tunB, "10.77.0.2/24", "fd77::2/64"]] as const) {
      sh(["ip", "link", "set", tun, "netns", ns.name]);
      ns.exec(["ip", "addr", "add", addr4, "dev", tun]);
      ns.exec(["ip", "addr", "add", addr6, "dev", tun, "nodad"]);
      ns.exec(["ip", "link", "set", tun, "mtu", "1420", "up"]);
    }
    const recv = nsB.start(["bun", `${import.meta.dir}/support/tcp-transfer.ts`, "recv", "5201"]);
    const recvOut = lines(recv);
    await recvOut.next((l) => l.includes("listening"));
    const send = nsA.start(["bun", `${import.meta.dir}/support/tcp-transfer.ts`, "send", v6 ? "fd77::2" : "10.77.0.2", "5201", String(TRANSFER)]);
    const sendOut = lines(send);
    const sent = JSON.parse(await sendOut.next((l) => l.includes("sha256")));
    const got = JSON.parse(await recvOut.next((l) => l.includes("sha256")));
    writeFileSync(stop, "");
    await wire.exited;
    const wireStats = JSON.parse(await out.next((l) => l.includes('"stats"'))) as WireStats;
    await Promise.all([nsA.destroy(), nsB.destroy()]);
    return { ready, wire: wireStats, sent, got };
  } finally {
    if (wire.exitCode === null) wire.kill("SIGKILL");
    await Promise.all([nsA.destroy(), nsB.destroy()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(label: string, w: WireStats, bytes: number): void {
  const gb = bytes / 1e9;
  const s = w.stats;
  console.log(`${label}: ${Math.round(s.reads / gb)} reads/GB, ${Math.round(s.writes / gb)} writes/GB, ${(w.cpuSeconds / gb).toFixed(2)} wire CPU-s/GB, ${(w.userSeconds / gb).toFixed(2)} of it in user space ` +
    `(reads ${s.reads}, super ${s.superReads}, segments ${s.segments}, writes ${s.writes}, merged ${s.mergedWrites} carrying ${s.mergedSegments}, refused ${s.refused}, write errors ${s.writeErrors})`);
}

describe.skipIf(skip !== undefined)("TUN offloads with the real kernel", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  test("an offload device's reader ring delivers vnet header + packet, and a write with a zero header reaches ping", async () => {
    const tag = uniqueTag();
    const ns = new Netns(`gg-offr-${tag}`);
    cleanup.push(() => ns.destroy());
    const tun = TunDevice.open(`ggor${tag}`, { offload: true });
    cleanup.push(() => tun.close());
    expect(tun.vnetHeader).toBe(true);
    sh(["ip", "link", "set", tun.name, "netns", ns.name]);
    ns.exec(["ip", "addr", "add", "10.96.0.1/24", "dev", tun.name]);
    ns.exec(["ip", "link", "set", tun.name, "mtu", "1420", "up"]);
    const reader = new TunReader(tun.fd, 1420, { onReadable: () => undefined, vnetHeader: true });
    cleanup.push(() => reader.stop());
    expect(reader.ring.layout.slotSize - (reader.ring.layout.lead ?? 0)).toBeGreaterThanOrEqual(VNET_HDR_LEN + 65535);
    const ping = ns.start(["ping", "-c", "1", "-W", "5", "10.96.0.2"]);
    const req = await waitFor("echo request in the reader's ring", () => {
      let found: ReturnType<typeof parseEcho>;
      reader.ring.drain(64, (data, offset, length) => {
        // Every read starts with the header; an echo request is no GSO packet, so it is all zero.
        const e = parseEcho(data.slice(offset + VNET_HDR_LEN, offset + length));
        if (e?.type === 8 && data.subarray(offset, offset + VNET_HDR_LEN).every((b) => b === 0)) found = e;
      });
      return found;
    });
    const reply = icmpEcho({ src: "10.96.0.2", dst: "10.96.0.1", type: 0, id: req.id, seq: req.seq, payload: req.payload });
    const out = new Uint8Array(VNET_HDR_LEN + reply.length);
    writeZeroVnetHeader(out, 0);
    out.set(reply, VNET_HDR_LEN);
    tun.writeAt(out, 0, out.length);
    expect(await Promise.race([ping.exited, Bun.sleep(6000).then(() => -1)])).toBe(0);
  }, 30_000);

  for (const v6 of [false, true]) {
    test(`a ${TRANSFER / MB} MB TCP transfer over IPv${v6 ? 6 : 4} arrives intact through super-packets, segmented and merged again`, async () => {
      const r = await transferThroughWire("offload", v6);
      expect(r.ready.a.offload).not.toBe("off");
      expect(r.got).toEqual(r.sent);
      expect(r.got.bytes).toBe(TRANSFER);
      expect(r.wire.stats.superReads).toBeGreaterThan(0); // reads longer than one MTU-sized packet
      expect(r.wire.stats.mergedWrites).toBeGreaterThan(0);
      expect(r.wire.stats.refused).toBe(0);
      report(`offload (${r.ready.a.offload}) IPv${v6 ? 6 : 4}`, r.wire, TRANSFER);
    }, 120_000);
  }

  test("with offloads refused the device falls back to plain packets and the transfer still arrives intact", async () => {
    const r = await transferThroughWire("refused", false);
    expect(r.ready.a).toMatchObject({ offload: "off", refused: "TUNSETOFFLOAD 0x8000: EINVAL" });
    expect(r.got).toEqual(r.sent);
    expect(r.got.bytes).toBe(TRANSFER);
    expect(r.wire.stats.superReads).toBe(0);
    expect(r.wire.stats.mergedWrites).toBe(0);
    expect(r.wire.stats.writes + r.wire.stats.writeErrors).toBe(r.wire.stats.reads); // one packet, one write
    report("plain (offload refused)", r.wire, TRANSFER);
  }, 120_000);
});
