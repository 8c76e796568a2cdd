// A handshake-initiation flooder for bench/handshake-flood.ts, run inside its own namespace:
//   bun bench/initiation-flooder.ts GW_PUBLIC_KEY GW_ADDRESS GW_PORT unknown|known|junk [PRIVATE_KEY] RATE SECONDS
// Every initiation carries a valid mac1 (it is built for the gateway's public key), so each one
// reaches the gateway's Diffie-Hellman work unless its load handling stops it. The flooder is a
// capable attacker: it decrypts the cookie replies it gets and stamps mac2 from then on, so only
// the per-source limit stands between it and the DH work.
//   unknown: a key the gateway does not know (each initiation costs the gateway 2 DH, then `unknown_peer`);
//   known:   a configured peer's key, fresh timestamps (each costs 2 DH, and a response — 2 more — when accepted);
//   junk:    the control — datagrams of the same size the gateway drops at once (transport type, no
//            such session): what receiving this many packets costs, whatever they are.
// Prints `ready` once its initiations are built, then one JSON line of what it did when done.
import { nobleAead } from "../src/crypto/aead-noble.ts";
import { hash, mac } from "../src/crypto/hash.ts";
import { decodeKey, generatePrivateKey } from "../src/crypto/x25519.ts";
import { createInitiation, staticSharedSecret } from "../src/wire/handshake.ts";
import { COOKIE_REPLY_SIZE, LABEL_COOKIE, LABEL_MAC1, LocalIdentity, MESSAGE_COOKIE_REPLY, messageType, readU32 } from "../src/wire/index.ts";
import { randomBytes } from "../src/crypto/x25519.ts";

const [gwKeyText, address, portText, mode, ...rest] = process.argv.slice(2);
const privateKey = mode === "known" ? decodeKey(rest.shift()!) : generatePrivateKey();
const rate = Number(rest[0]);
const seconds = Number(rest[1]);
if (!gwKeyText || !address || !(mode === "known" || mode === "unknown" || mode === "junk") || !(rate > 0) || !(seconds > 0)) {
  throw new Error("usage: initiation-flooder.ts GW_PUBLIC_KEY GW_ADDRESS GW_PORT unknown|known|junk [PRIVATE_KEY] RATE SECONDS");
}
const gwKey = decodeKey(gwKeyText);
const port = Number(portText);
const me = new LocalIdentity(privateKey, randomBytes);
const shared = staticSharedSecret(me, gwKey)!;
const mac1Key = hash(LABEL_MAC1, gwKey);
const cookieKey = hash(LABEL_COOKIE, gwKey);

// Distinct sender indices (cookie replies name the message they answer). Known-key messages get
// timestamps 20 ms apart so each is newer than the last once whitened (2^24 ns) — a replay of an
// older one is refused only after its DH work, so cycling the pool keeps costing the gateway.
const POOL = mode === "known" ? 400 : 64;
const pool: Uint8Array[] = [];
const mac1Of = new Map<number, Uint8Array>();
const start = Date.now();
for (let i = 0; i < POOL; i++) {
  const msg = createInitiation(nobleAead, me, gwKey, shared, 0x10000 + i, start + i * 20, randomBytes)!.message;
  if (mode === "junk") msg[0] = 4; // transport, receiver index 0x1xxxx: no such connection
  const m1 = mac(mac1Key, msg.subarray(0, msg.length - 32));
  msg.set(m1, msg.length - 32);
  pool.push(msg);
  mac1Of.set(0x10000 + i, m1);
}

let cookies = 0;
let current: Uint8Array | undefined;
let cookieFailures = 0;
const socket = await Bun.udpSocket({
  connect: { hostname: address, port },
  socket: {
    data(_s, buf) {
      const reply = new Uint8Array(buf);
      if (reply.length !== COOKIE_REPLY_SIZE || messageType(reply) !== MESSAGE_COOKIE_REPLY) return;
      const m1 = mac1Of.get(readU32(reply, 4));
      const cookie = new Uint8Array(16);
      if (!m1 || nobleAead.xopen(cookieKey, reply.subarray(8, 32), reply.subarray(32, 64), m1, cookie) !== 16) {
        cookieFailures++;
        return;
      }
      cookies++;
      // Replies to messages sent before we had it carry the same cookie: restamp only on a new one.
      if (current && current.every((x, i) => x === cookie[i])) return;
      current = cookie;
      // mac2 over everything before it, keyed with the cookie: valid for our address for 120 s.
      for (const msg of pool) msg.set(mac(cookie, msg.subarray(0, msg.length - 16)), msg.length - 16);
    },
  },
});
console.log("ready");

// Paced in 5 ms ticks so the flooder's own CPU stays small next to the gateway's.
const TICK = 5;
const endAt = Date.now() + seconds * 1000;
const cpu0 = process.cpuUsage();
const t0 = Date.now();
let sent = 0;
let next = 0;
while (Date.now() < endAt) {
  const due = Math.floor(((Date.now() - t0) / 1000) * rate) - sent;
  if (due > 0) {
    const batch: Uint8Array[] = [];
    for (let i = 0; i < due; i++) batch.push(pool[next++ % POOL]!);
    socket.sendMany(batch);
    sent += due;
  }
  await Bun.sleep(TICK);
}
const elapsed = (Date.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
socket.close();
console.log(JSON.stringify({ mode, sent, seconds: elapsed, rate: sent / elapsed, cookies, cookieFailures, cpuSeconds: (cpu.user + cpu.system) / 1e6 }));
