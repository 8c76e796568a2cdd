// TCP source for transfer tests: connects to HOST:PORT, sends MEGABYTES of deterministic bytes,
// prints "<bytes> <hex digest>" of what it sent, then closes.
const [host, portText, mbText] = process.argv.slice(2);
const total = Number(mbText) * 1024 * 1024;
const chunk = new Uint8Array(64 * 1024);
let s = 0x9e3779b9;
for (let i = 0; i < chunk.length; i++) {
  s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
  chunk[i] = s & 0xff;
}
const hasher = new Bun.CryptoHasher("sha256");
let sent = 0;
let pending: Uint8Array | undefined;
let n = 0;
function next(): Uint8Array | undefined {
  if (sent >= total) return undefined;
  const c = chunk.slice(0, Math.min(chunk.length, total - sent));
  c[0] = n++ & 0xff; // vary every chunk so reordering or duplication would change the digest
  hasher.update(c);
  sent += c.length;
  return c;
}
await Bun.connect({
  hostname: host!,
  port: Number(portText),
  socket: {
    open(sock) { pump(sock); },
    drain(sock) { pump(sock); },
    data() {},
  },
});
function pump(sock: { write(d: Uint8Array): number; end(): void }) {
  for (;;) {
    const c = pending ?? next();
    if (!c) {
      sock.end();
      process.stdout.write(`${total} ${hasher.digest("hex")}\n`);
      setTimeout(() => process.exit(0), 100);
      return;
    }
    const w = sock.write(c);
    if (w < c.length) {
      pending = c.subarray(w);
      return;
    }
    pending = undefined;
  }
}
export {};
