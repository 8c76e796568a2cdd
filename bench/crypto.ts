// AEAD throughput per backend on one core, for 1420-byte packets (a full WireGuard MTU payload),
// plus the whole transport data path (WirePeer.encapsulate → decapsulate) per backend. Prints
// Gbit/s and the libsodium/noble ratio measured in the same run.
import type { Aead } from "../src/crypto/aead.ts";
import { nobleAead } from "../src/crypto/aead-noble.ts";
import { loadSodiumAead } from "../src/crypto/aead-sodium.ts";
import { WirePair, ipv4Packet } from "../test/support/wire-pair.ts";

const PACKET = 1420;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1.5);

function measure(label: string, op: () => void): number {
  // Warm up the JIT, then run for a fixed wall time in batches (checking the clock per batch).
  for (let i = 0; i < 2000; i++) op();
  let n = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 256; i++) op();
    n += 256;
  }
  const secs = (performance.now() - start) / 1000;
  const gbps = (n * PACKET * 8) / secs / 1e9;
  console.log(`${label.padEnd(44)} ${gbps.toFixed(3).padStart(7)} Gbit/s  ${(n / secs / 1000).toFixed(0).padStart(6)} kpps`);
  return gbps;
}

function sealLoop(aead: Aead): () => void {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  const buf = crypto.getRandomValues(new Uint8Array(PACKET + 16));
  let counter = 0;
  return () => {
    view.setUint32(4, counter++, true);
    aead.sealInPlace(key, nonce, buf, 0, PACKET);
  };
}

function openLoop(aead: Aead): () => void {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const nonce = new Uint8Array(12);
  const sealed = new Uint8Array(PACKET + 16);
  aead.seal(key, nonce, crypto.getRandomValues(new Uint8Array(PACKET)), new Uint8Array(0), sealed);
  const out = new Uint8Array(PACKET);
  return () => {
    if (aead.openFrom(key, nonce, sealed, 0, sealed.length, out) !== PACKET) throw new Error("open failed");
  };
}

function dataPathLoop(aead: Aead): () => void {
  const w = new WirePair({ seed: 1, aead });
  w.a.peer.send(ipv4Packet(new Uint8Array(1)), w.now);
  w.advance(100);
  const inner = ipv4Packet(new Uint8Array(PACKET - 20));
  const wire = new Uint8Array(PACKET + 64);
  const out = new Uint8Array(PACKET + 64);
  const from = w.a.addr;
  return () => {
    const n = w.a.peer.encapsulate(inner, wire, w.now);
    if (w.b.peer.decapsulate(wire.subarray(0, n), from, out, w.now) !== PACKET) throw new Error("data path failed");
  };
}

export function runCryptoBench(): Record<string, number> {
  let sodium: Aead | undefined;
  try {
    sodium = loadSodiumAead();
  } catch (err) {
    console.log(`libsodium unavailable (${(err as Error).message}); only noble is measured`);
  }
  console.log(`\nAEAD ChaCha20-Poly1305, ${PACKET}-byte packets, one core, ${SECONDS}s each`);
  const r: Record<string, number> = {};
  for (const aead of [nobleAead, sodium].filter((a): a is Aead => a !== undefined)) {
    r[`${aead.name}.seal`] = measure(`${aead.name} seal`, sealLoop(aead));
    r[`${aead.name}.open`] = measure(`${aead.name} open`, openLoop(aead));
    r[`${aead.name}.datapath`] = measure(`${aead.name} encapsulate+decapsulate (WirePeer)`, dataPathLoop(aead));
  }
  if (sodium) {
    console.log(`ratio libsodium/noble: seal ${(r["libsodium.seal"]! / r["noble.seal"]!).toFixed(2)}×, ` +
      `open ${(r["libsodium.open"]! / r["noble.open"]!).toFixed(2)}×, ` +
      `data path ${(r["libsodium.datapath"]! / r["noble.datapath"]!).toFixed(2)}×`);
  }
  return r;
}

if (import.meta.main) runCryptoBench();
