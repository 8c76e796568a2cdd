export {};
// One long-lived TCP connection to HOST:PORT: sends a line every INTERVAL ms for SECONDS and
// records each reply line (tcp-whoami answers with the server address that accepted the
// connection). Prints JSON {replies, sent, error?}: a reset, a close or a missing reply ends it.
const [host, port, seconds, interval] = process.argv.slice(2);
const replies: string[] = [];
let buffered = "";
let waiting: ((line: string | Error) => void) | undefined;
const deliver = (v: string | Error) => {
  const w = waiting;
  waiting = undefined;
  w?.(v);
};
let sent = 0;
let error: string | undefined;
try {
  const sock = await Bun.connect({
    hostname: host!,
    port: Number(port),
    socket: {
      data(_s, data) {
        buffered += data.toString();
        for (let i = buffered.indexOf("\n"); i >= 0; i = buffered.indexOf("\n")) {
          const line = buffered.slice(0, i);
          buffered = buffered.slice(i + 1);
          deliver(line);
        }
      },
      close() {
        deliver(new Error("closed by the peer"));
      },
      error(_s, err) {
        deliver(err);
      },
    },
  });
  const end = Date.now() + Number(seconds) * 1000;
  while (Date.now() < end) {
    const reply = new Promise<string | Error>((r) => (waiting = r));
    sock.write(`ping ${sent++}\n`);
    const got = await Promise.race([reply, Bun.sleep(5000).then(() => new Error("no reply within 5 s"))]);
    if (got instanceof Error) throw got;
    replies.push(got);
    await Bun.sleep(Number(interval));
  }
  sock.end();
} catch (err) {
  error = (err as Error).message ?? String(err);
}
process.stdout.write(JSON.stringify({ replies, sent, error }) + "\n");
process.exit(0);
