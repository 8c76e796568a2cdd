// Accepts TCP connections on HOST and each PORT given, and closes them: a "server" for probes.
const [host, ...ports] = process.argv.slice(2);
for (const port of ports) {
  Bun.listen({ hostname: host!, port: Number(port), socket: { open(s) { s.end(); }, data() {} } });
}
process.stdout.write("listening\n");
export {};
