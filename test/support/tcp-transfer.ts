// One TCP transfer with a checksum on each side, for integration tests through tunnels:
//   bun test/support/tcp-transfer.ts recv PORT              → prints {"bytes":…,"sha256":…} when the sender closes
//   bun test/support/tcp-transfer.ts send HOST PORT BYTES   → sends BYTES of random data, prints the same
import { connect, createServer } from "node:net";

const [mode, ...args] = process.argv.slice(2);
const hash = new Bun.CryptoHasher("sha256");
let bytes = 0;

if (mode === "recv") {
  const server = createServer((s) => {
    s.on("data", (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
    });
    s.on("end", () => {
      console.log(JSON.stringify({ bytes, sha256: hash.digest("hex") }));
      server.close();
      process.exit(0);
    });
  });
  server.listen(Number(args[0]), () => console.log(JSON.stringify({ listening: true })));
} else {
  const [host, port, total] = [args[0]!, Number(args[1]), Number(args[2])];
  // 1 MB of random bytes, each 64 KB chunk stamped with its number so no two chunks are alike.
  const pool = new Uint8Array(1 << 20);
  for (let i = 0; i < pool.length; i += 65536) crypto.getRandomValues(pool.subarray(i, i + 65536));
  let chunkNo = 0;
  const sock = connect(port, host);
  const pump = () => {
    while (bytes < total) {
      const n = Math.min(65536, total - bytes);
      const off = (chunkNo * 65536) % pool.length;
      const chunk = Buffer.from(pool.subarray(off, off + n));
      chunk.writeUInt32BE(chunkNo++ >>> 0, 0);
      hash.update(chunk);
      bytes += n;
      if (!sock.write(chunk)) return void sock.once("drain", pump);
    }
    sock.end();
  };
  sock.on("connect", pump);
  sock.on("close", () => {
    console.log(JSON.stringify({ bytes, sha256: hash.digest("hex") }));
    process.exit(0);
  });
  sock.on("error", (e) => {
    console.error(String(e));
    process.exit(1);
  });
}
