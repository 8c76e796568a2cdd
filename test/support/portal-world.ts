// The portal-mode world of the e2e tests and the relay bench, in namespaces it creates: the headless
// client's namespace, the gateway's (`glassgate up --portal` or the gateway double of
// test/support/headless-gateway.ts, the dev portal, coturn when relayed) and a resource server's.
// Relayed: the gateway's WireGuard port is closed to the client, so ICE can only settle on the TURN
// relay the portal hands out — either end's allocation, or with `onlyClientRelay` the client's own.
//
//   client 10.9.0.2 -- 10.9.0.1 gateway + dev portal (+ coturn) 10.77.0.1 -- 10.77.0.5 resource
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { link, Netns, uniqueTag, waitFor } from "./netns.ts";
import { watch, type Watched } from "./process-lines.ts";

const BUN = process.execPath;
const ROOT = `${import.meta.dir}/../..`;
const TURN_USER = "gw-relay";
const TURN_PASS = "relay-password-1";
export const ADMIN_TOKEN = "portal-client-e2e-token-0123456789";
/** The resource server's address (HTTP on 80; the bench runs iperf3 there too). */
export const RESOURCE_IP = "10.77.0.5";

export interface World {
  res: Netns;
  /** The gateway's process (the bench reads its CPU time). */
  gatewayProc: Subprocess<"ignore", "pipe", "pipe">;
  cl: Netns;
  gw: Netns;
  dir: string;
  /** The gateway's JSON lines (glassgate: its log on stderr; the double: stdout). */
  gateway: Watched;
  portal: Watched;
  startClient(): { proc: ReturnType<Netns["start"]>; out: Watched };
  curl(): string;
  /** A form post to the dev portal's page (what an operator's click does). */
  operator(path: string, form: string): void;
  /** What each side said, for a failure report; the logs are written to `dir`. */
  diagnose(client: Watched): string;
}

export interface WorldOptions {
  relay: boolean;
  /** Relayed, and the client may reach the gateway's host only at coturn: the client's own allocation carries it. */
  onlyClientRelay?: boolean;
  /** `glassgate up --portal` (default), or the gateway double (GatewayNode + a controlled IceAgent). */
  gateway?: "glassgate" | "double";
}

/**
 * `cleanups` gets the namespaces' removal (which ends every process started in them) and, last,
 * the files' (E2E_KEEP_LOGS=1 keeps them).
 */
export async function world(opts: WorldOptions, cleanups: (() => Promise<void> | void)[]): Promise<World> {
  const tag = uniqueTag();
  const cl = new Netns(`pcl${tag}`);
  const gw = new Netns(`pgw${tag}`);
  const res = new Netns(`prs${tag}`);
  cleanups.push(() => cl.destroy(), () => gw.destroy(), () => res.destroy());
  link(cl, "eth0", "10.9.0.2/24", gw, "cl0", "10.9.0.1/24");
  link(gw, "res0", "10.77.0.1/24", res, "eth0", "10.77.0.5/24");
  res.exec(["ip", "route", "add", "default", "via", "10.77.0.1"]);
  gw.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  gw.exec(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);

  const dir = mkdtempSync(join(tmpdir(), "portal-e2e-"));
  if (!process.env.E2E_KEEP_LOGS) cleanups.unshift(() => rmSync(dir, { recursive: true, force: true })); // last: after the processes
  const seedPath = join(dir, "seed.json");
  writeFileSync(seedPath, JSON.stringify({
    gateways: [{ id: "gw-1", name: "edge-1", token: "gateway-token-1", ipv4: "100.64.0.1", ipv6: "fd00:2021:1111::1" }],
    clients: [{ id: "client-1", name: "laptop", token: "client-token-1", ipv4: "100.64.0.2", ipv6: "fd00:2021:1111::2" }],
    resources: [{ type: "cidr", id: "res-lab", name: "lab", address: "10.77.0.0/24" }],
    policies: [{ client: "client-1", resource: "res-lab", expires_in: 3600 }],
    relays: opts.relay ? [{ type: "turn", id: "relay-1", addr: "10.9.0.1:3478", username: TURN_USER, password: TURN_PASS, expires_at: Math.floor(Date.now() / 1000) + 3600 }] : [],
  }));

  const server = watch(res.start([BUN, "-e", `Bun.serve({ hostname: "10.77.0.5", port: 80, fetch: () => new Response("hello from the resource\\n") }); console.log("listening")`]), "resource");
  await server.next((l) => l.text === "listening", "listening");
  const portal = watch(gw.start([BUN, `${ROOT}/tools/dev-portal/main.ts`, "--seed", seedPath, "--listen", "10.9.0.1:8081"]), "portal");
  await portal.next((l) => l.msg === "listening", "listening");
  if (opts.relay) {
    writeFileSync(join(dir, "turnserver.conf"), [
      "listening-ip=10.9.0.1", "listening-port=3478", "relay-ip=10.9.0.1", "min-port=49200", "max-port=49300", "realm=glassgate.test",
      "fingerprint", "no-tls", "no-dtls", "no-cli", "no-rfc5780", "lt-cred-mech", `user=${TURN_USER}:${TURN_PASS}`,
      `userdb=${join(dir, "turndb")}`, `pidfile=${join(dir, "turnserver.pid")}`, `log-file=${join(dir, "turn.log")}`, "simple-log",
    ].join("\n") + "\n");
    gw.start(["turnserver", "-c", join(dir, "turnserver.conf"), "--no-cli"]);
    await waitFor("coturn listening", () => gw.exec(["ss", "-uln"], { allowFail: true }).includes("10.9.0.1:3478"), 10_000);
    if (opts.onlyClientRelay) {
      // Between the client's host and the gateway's only coturn's port: the gateway's host and
      // relayed addresses are out of reach, so only the client's own allocation works.
      cl.exec(["iptables", "-A", "OUTPUT", "-p", "udp", "-d", "10.9.0.1", "!", "--dport", "3478", "-j", "DROP"]);
      cl.exec(["iptables", "-A", "INPUT", "-p", "udp", "-s", "10.9.0.1", "!", "--sport", "3478", "-j", "DROP"]);
    } else {
      // No direct path: the client's datagrams to the gateway's WireGuard port are dropped, so only
      // pairs through the relay can succeed.
      gw.exec(["iptables", "-A", "INPUT", "-p", "udp", "-s", "10.9.0.2", "-d", "10.9.0.1", "--dport", "52625", "-j", "DROP"]);
    }
  }

  const gwTun = `pgt${tag}`.slice(0, 15);
  let gatewayProc: Subprocess<"ignore", "pipe", "pipe">;
  let gateway: Watched;
  if (opts.gateway === "double") {
    gatewayProc = gw.start([BUN, `${ROOT}/test/support/headless-gateway.ts`], { PORTAL_URL: "http://10.9.0.1:8081", TOKEN: "gateway-token-1", HOST_ADDRESS: "10.9.0.1", TUN_NAME: gwTun });
    gateway = watch(gatewayProc, "gateway double");
    await gateway.next((l) => l.kind === "joined", "joined");
  } else {
    gatewayProc = gw.start([BUN, `${ROOT}/src/cli.ts`, "up", "--portal", "--interface", gwTun, "--admin", "10.9.0.1:8080", "--data", join(dir, "data")], {
      FIREZONE_API_URL: "http://10.9.0.1:8081",
      FIREZONE_TOKEN: "gateway-token-1",
      FIREZONE_ID: "gw-1",
      GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN,
      GLASSGATE_LOG: process.env.PORTAL_E2E_LOG ?? "info",
    });
    gateway = watch(gatewayProc, "gateway", "stderr"); // the gateway's JSON log lines are on stderr
    await gateway.next((l) => l.msg === "TUN configured from the portal", "its TUN from init", 30_000);
  }

  let clients = 0;
  return {
    cl,
    gw,
    res,
    gatewayProc,
    dir,
    gateway,
    portal,
    startClient() {
      const proc = cl.start([BUN, `${ROOT}/tools/headless-client/main.ts`, "--portal", "http://10.9.0.1:8081", "--token", "client-token-1", "--resource", "res-lab", "--host", "10.9.0.2", "--tun", `pc${clients++}${tag}`.slice(0, 15)], { GLASSGATE_LOG: process.env.HEADLESS_LOG ?? "info" });
      return { proc, out: watch(proc, "client") };
    },
    curl: () => cl.exec(["curl", "-s", "--max-time", "5", "http://10.77.0.5/"], { allowFail: true }),
    operator: (path, form) => void gw.exec(["curl", "-s", "-o", "/dev/null", "-X", "POST", "-d", form, `http://10.9.0.1:8081${path}`]),
    diagnose(client) {
      writeFileSync(join(dir, "client.stderr"), client.other.join("\n"));
      writeFileSync(join(dir, "gateway.log"), [...gateway.lines.map((l) => JSON.stringify(l)), ...gateway.other].join("\n"));
      return `client: ${JSON.stringify(client.lines.slice(-15))}\nlogs in ${dir} (kept with E2E_KEEP_LOGS=1)\nclient routes: ${cl.exec(["ip", "route"])}\ngateway routes: ${gw.exec(["ip", "route"])}\nportal: ${portal.lines.slice(-12).map((l) => JSON.stringify(l)).join(" ")}`;
    },
  };
}

/** The admin API is in the gateway's namespace: ask it from there. */
export function adminConnections(w: World): { cid: number; portal?: { client_id: string }; [field: string]: unknown }[] {
  const out = w.gw.exec(["curl", "-s", "-H", `authorization: Bearer ${ADMIN_TOKEN}`, "http://10.9.0.1:8080/api/connections"], { allowFail: true });
  return out ? (JSON.parse(out) as { connections: { cid: number; portal?: { client_id: string }; [field: string]: unknown }[] }).connections : [];
}

