// `bun tools/dev-portal/main.ts --seed FILE [--listen HOST:PORT]`: a Firezone-shaped portal for demos
// and tests. Point a gateway at it with FIREZONE_API_URL=http://HOST:PORT and a token from the seed.
import { loadSeed } from "./seed.ts";
import { startDevPortal } from "./server.ts";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seedPath = arg("--seed");
if (!seedPath) {
  console.error("usage: bun tools/dev-portal/main.ts --seed FILE.(json|toml) [--listen 127.0.0.1:8081]");
  process.exit(2);
}
const listen = arg("--listen") ?? "127.0.0.1:8081";
const m = /^(.+):(\d{1,5})$/.exec(listen);
if (!m) {
  console.error(`--listen: "${listen}" is not HOST:PORT`);
  process.exit(2);
}
let seed;
try {
  seed = loadSeed(seedPath);
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
const server = startDevPortal({ seed, hostname: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) });
server.portal.onRecord((r) => console.log(JSON.stringify({ ts: new Date(r.at).toISOString(), target: "dev-portal", dir: r.dir, side: r.side, id: r.id, event: r.event })));
console.log(JSON.stringify({ ts: new Date().toISOString(), target: "dev-portal", msg: "listening", url: server.url, page: `${server.url}/` }));
const shutdown = () => void server.stop().then(() => process.exit(0));
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
