// `bun tools/portal-demo.ts` (as root): portal mode in one command — the dev portal seeded from
// tools/dev-portal/example.toml on 127.0.0.1:8081 and `glassgate up --portal` pointed at it as
// gateway gw-1, their logs interleaved on stdout. Ctrl-C stops both (the gateway says goodbye).
// A client then joins the dev portal with client-1's token (tools/headless-client, README
// "Portal mode"); the portal page at http://127.0.0.1:8081/ authorizes and revokes flows.
//
// Options: --seed FILE (default the example), --portal HOST:PORT (default 127.0.0.1:8081),
// --interface NAME (default glassgate-demo), --admin HOST:PORT (default 127.0.0.1:8080).
import { spawn, type Subprocess } from "bun";
import { join } from "node:path";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
};
const root = join(import.meta.dir, "..");
const seed = arg("--seed", join(root, "tools/dev-portal/example.toml"));
const listen = arg("--portal", "127.0.0.1:8081");

const children: Subprocess[] = [];
const run = (name: string, cmd: string[], env: Record<string, string> = {}) => {
  const p = spawn(cmd, { cwd: root, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  children.push(p);
  for (const stream of [p.stdout, p.stderr]) {
    void (async () => {
      let rest = "";
      for await (const chunk of stream) {
        const text = rest + new TextDecoder().decode(chunk);
        const lines = text.split("\n");
        rest = lines.pop() ?? "";
        for (const l of lines) console.log(`${name.padEnd(8)}| ${l}`);
      }
    })();
  }
  void p.exited.then((code) => {
    console.log(`${name.padEnd(8)}| exited ${code}`);
    stop();
  });
  return p;
};

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  void Promise.all(children.map((c) => c.exited)).then(() => process.exit(0));
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

run("portal", ["bun", "tools/dev-portal/main.ts", "--seed", seed, "--listen", listen]);
await Bun.sleep(500); // the gateway would retry anyway; this only keeps the first lines tidy
run("gateway", ["bun", "src/cli.ts", "up", "--portal", "--interface", arg("--interface", "glassgate-demo"), "--admin", arg("--admin", "127.0.0.1:8080")], {
  FIREZONE_API_URL: `http://${listen}`,
  FIREZONE_TOKEN: "gateway-token-1",
  FIREZONE_ID: "gw-1",
  FIREZONE_NAME: "edge-1",
});
console.log(`demo     | dev portal page: http://${listen}/  ·  gateway admin: http://${arg("--admin", "127.0.0.1:8080")}/  ·  Ctrl-C stops both`);
