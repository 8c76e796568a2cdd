// UDP on loopback between two processes: node:dgram (today's path: one send call and one callback
// per datagram) against the gateway's own socket (src/io/udp-socket.ts: sendBatch with sendmmsg +
// GSO, recvmmsg + GRO in a worker). Prints, alternating rounds, medians of datagrams/s received and
// CPU-seconds per GB received (sender + receiver, all threads, from /proc), and the ratios.
//
//   bun bench/udp.ts            (BENCH_UDP_SECONDS, BENCH_UDP_ROUNDS)
import { spawn, type Subprocess } from "bun";
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { GatewayUdp } from "../src/io/udp-socket.ts";
import { DatagramBatch } from "../src/node/batches.ts";

const PACKET = 1420;
const SECONDS = Number(process.env.BENCH_UDP_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_UDP_ROUNDS ?? 3);
const TICKS = 100; // USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s
// Limits high enough that the benchmark never writes /proc/sys; as root *FORCE gets the 8 MiB anyway.
const sysctls = { read: () => String(1 << 30), write: () => {} };

/** dgram: today's path; ffi: GatewayUdp with the offloads the kernel offers; plain: GatewayUdp with GSO/GRO off. */
type Mode = "dgram" | "ffi" | "plain";

/** CPU seconds used so far by a process, all threads (utime + stime). */
function cpuSeconds(pid: number | "self"): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The receiving process: counts datagrams and bytes until stdin says stop, then prints them. */
async function receiver(mode: Mode): Promise<void> {
  let datagrams = 0;
  let bytes = 0;
  let port: number;
  let close: () => unknown;
  if (mode === "dgram") {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
    sock.setRecvBufferSize(8 << 20);
    sock.on("message", (msg) => {
      datagrams++;
      bytes += msg.length;
    });
    port = sock.address().port;
    close = () => sock.close();
  } else {
    const sock = await GatewayUdp.open({
      port: 0, bindV4: "127.0.0.1", ipv6: false, sysctls, gro: mode === "ffi",
      onDatagram: (_buf, _off, len) => {
        datagrams++;
        bytes += len;
      },
    });
    port = sock.port;
    close = () => sock.close();
  }
  console.log(JSON.stringify({ port }));
  for await (const _ of Bun.stdin.stream()) break;
  console.log(JSON.stringify({ datagrams, bytes }));
  await close();
  process.exit(0);
}

interface Round {
  sentPps: number;
  pps: number;
  cpuPerGB: number;
  /** The receiving process's share (its worker included). */
  rxCpuPerGB: number;
  gbps: number;
  perSyscall: number;
}

async function lines(p: Subprocess<"pipe", "pipe", "inherit">): Promise<AsyncIterator<string>> {
  const decoder = new TextDecoder();
  const reader = p.stdout.getReader();
  let buffered = "";
  return {
    async next() {
      for (;;) {
        const nl = buffered.indexOf("\n");
        if (nl >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          return { value: line, done: false };
        }
        const { value, done } = await reader.read();
        if (done) return { value: undefined, done: true };
        buffered += decoder.decode(value);
      }
    },
  };
}

async function round(mode: Mode): Promise<Round> {
  const child = spawn([process.execPath, import.meta.path, "rx", mode], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const out = await lines(child);
  const { port } = JSON.parse((await out.next()).value!) as { port: number };
  const to = { address: "127.0.0.1", port };
  let sendCalls = 0;
  let sent = 0;
  let sendOne: () => number;
  let closeSender: () => unknown;
  if (mode === "dgram") {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
    sock.setSendBufferSize(8 << 20);
    const payload = Buffer.alloc(PACKET, 7);
    sendOne = () => {
      for (let i = 0; i < 256; i++) sock.send(payload, port, "127.0.0.1");
      sendCalls += 256;
      return 256;
    };
    closeSender = () => sock.close();
  } else {
    const sock = await GatewayUdp.open({ port: 0, bindV4: "127.0.0.1", ipv6: false, sysctls, gso: mode === "ffi", onDatagram: () => {} });
    const batch = new DatagramBatch(256, 2048);
    while (!batch.full) {
      batch.data.fill(7, batch.next(), batch.next() + PACKET);
      batch.commit(PACKET, to);
    }
    sendOne = () => sock.sendBatch(batch);
    closeSender = async () => {
      sendCalls = sock.sendSyscalls;
      await sock.close();
    };
  }
  const tx0 = cpuSeconds("self");
  const rx0 = cpuSeconds(child.pid);
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 16; i++) sent += sendOne();
    await Bun.sleep(0); // let dgram's queued sends and any callbacks run
  }
  await Bun.sleep(50); // the last datagrams in flight
  const rxCpu = cpuSeconds(child.pid) - rx0;
  const cpu = cpuSeconds("self") - tx0 + rxCpu;
  const secs = (performance.now() - t0) / 1000;
  child.stdin.write("stop\n");
  await child.stdin.flush();
  const { datagrams, bytes } = JSON.parse((await out.next()).value!) as { datagrams: number; bytes: number };
  await closeSender();
  await child.exited;
  return { sentPps: sent / secs, pps: datagrams / secs, gbps: (bytes * 8) / secs / 1e9, cpuPerGB: cpu / (bytes / 1e9), rxCpuPerGB: rxCpu / (bytes / 1e9), perSyscall: sent / Math.max(1, sendCalls) };
}

export async function runUdpBench(): Promise<void> {
  console.log(`\nUDP on loopback, ${PACKET} B datagrams, sender → receiver process, ${ROUNDS} alternating rounds of ${SECONDS} s (medians)`);
  const runs: Record<Mode, Round[]> = { dgram: [], ffi: [], plain: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of ["dgram", "ffi", "plain"] as const) runs[mode].push(await round(mode));
  }
  const med = (mode: Mode, k: keyof Round) => median(runs[mode].map((x) => x[k]));
  for (const [mode, label] of [["dgram", "node:dgram (send + message event)"], ["ffi", "GatewayUdp (sendmmsg+GSO / recvmmsg+GRO)"], ["plain", "GatewayUdp, no GSO/GRO (fallback)"]] as const) {
    console.log(
      `${label.padEnd(44)} ${(med(mode, "sentPps") / 1000).toFixed(0).padStart(6)} kpps sent ${(med(mode, "pps") / 1000).toFixed(0).padStart(6)} kpps received  ${med(mode, "gbps").toFixed(2).padStart(6)} Gbit/s  ` +
        `${med(mode, "cpuPerGB").toFixed(3).padStart(7)} CPU-s/GB (receiver ${med(mode, "rxCpuPerGB").toFixed(3)})  ${med(mode, "perSyscall").toFixed(1).padStart(6)} datagrams/send call`,
    );
  }
  for (const mode of ["ffi", "plain"] as const) {
    console.log(`ratio ${mode === "ffi" ? "GatewayUdp" : "GatewayUdp, no GSO/GRO"} / node:dgram: ${(med(mode, "pps") / med("dgram", "pps")).toFixed(2)}× datagrams/s received, ${(med("dgram", "cpuPerGB") / med(mode, "cpuPerGB")).toFixed(2)}× less CPU per GB`);
  }
}

if (import.meta.main) {
  if (process.argv[2] === "rx") await receiver(process.argv[3] as Mode);
  else await runUdpBench();
}
