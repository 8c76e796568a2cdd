// A TCP server on PORT at each HOST that answers every line it receives with the address the
// connection was accepted on: which server a flow really reaches.
const [port, ...hosts] = process.argv.slice(2);
for (const host of hosts) {
  Bun.listen({
    hostname: host,
    port: Number(port),
    socket: {
      data(s, data) {
        const lines = data.toString().split("\n").length - 1;
        for (let i = 0; i < lines; i++) s.write(`${host}\n`);
      },
    },
  });
}
process.stdout.write("listening\n");
export {};
