// A local Sentry ingestion endpoint for tests: accepts envelopes on 127.0.0.1:PORT (argv[2]) and
// prints one line per envelope request. Started inside a test's gateway namespace, so the
// gateway's SENTRY_DSN points at its own loopback. `delayMs` (argv[3]) holds each answer back,
// as a slow or distant Sentry does.
const port = Number(process.argv[2]);
const delayMs = Number(process.argv[3] ?? 0);
Bun.serve({
  hostname: "127.0.0.1",
  port,
  async fetch(req) {
    const body = await req.text();
    if (delayMs > 0) await Bun.sleep(delayMs);
    process.stdout.write(`${JSON.stringify({ path: new URL(req.url).pathname, bytes: body.length })}\n`);
    return new Response("{}", { headers: { "content-type": "application/json" } });
  },
});
process.stdout.write("ready\n");
