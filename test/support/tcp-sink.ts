// TCP sink for transfer tests: accepts one connection on HOST:PORT, hashes everything received
// (SHA-256), prints "<bytes> <hex digest>" when the sender closes, then exits.
const [host, portText] = process.argv.slice(2);
const hasher = new Bun.CryptoHasher("sha256");
let bytes = 0;
const server = Bun.listen({
  hostname: host!,
  port: Number(portText),
  socket: {
    data(_s, data) {
      hasher.update(data);
      bytes += data.length;
    },
    close() {
      process.stdout.write(`${bytes} ${hasher.digest("hex")}\n`);
      server.stop(true);
      process.exit(0);
    },
  },
});
process.stdout.write("listening\n");
export {};
