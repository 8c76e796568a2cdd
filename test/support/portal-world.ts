// The portal-mode world of the e2e test and the relay bench, in namespaces it creates: the headless
// client's namespace, the gateway's (`glassgate up --portal`, the dev portal, coturn when relayed)
// and a resource server's. Relayed: the gateway's WireGuard port is closed to the client, so ICE can
// only settle on the TURN relay the portal hands out.
//
//   client 10.9.0.2 -- 10.9.0.1 gateway + dev portal (+ coturn) 10.77.0.1 -- 10.77.0.5 resource
import type { Subprocess } from "bun";
import { mkdtempSync, writeFileSync } from "node:fs";
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
  /** The `glassgate up --portal` process (the bench reads its CPU time). */
  gatewayProc: Subprocess<"ignore", "pipe", "pipe">;
  cl: Netns;
  gw: Netns;
  dir: string;
  gateway: Watched;
  startClient(): { proc: ReturnType<Netns["start"]>; out: Watched };
  curl(): string;
}

/** `cleanups` gets the namespaces' removal (which ends every process started in them). */
export async function world(opts: { relay: boolean }, cleanups: (() => Promise<void> | void)[]): Promise<World> {
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
    // No direct path: the client's datagrams to the gateway's WireGuard port are dropped, so only
    // pairs through the relay can succeed.
    gw.exec(["iptables", "-A", "INPUT", "-p", "udp", "-s", "10.9.0.2", "-d", "10.9.0.1", "--dport", "52625", "-j", "DROP"]);
  }

  const gatewayProc = gw.start([BUN, `${ROOT}/src/cli.ts`, "up", "--portal", "--interface", `pgt${tag}`.slice(0, 15), "--admin", "10.9.0.1:8080", "--data", join(dir, "data")], {
    FIREZONE_API_URL: "http://10.9.0.1:8081",
    FIREZONE_TOKEN: "gateway-token-1",
    FIREZONE_ID: "gw-1",
    GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN,
    GLASSGATE_LOG: process.env.PORTAL_E2E_LOG ?? "info",
  });
  const gateway = watch(gatewayProc, "gateway", "stderr");
  await gateway.next((l) => l.msg === "TUN configured from the portal", "its TUN from init");

  let clients = 0;
  return {
    cl,
    gw,
    res,
    gatewayProc,
    dir,
    gateway,
    startClient() {
      const proc = cl.start([BUN, `${ROOT}/tools/headless-client/main.ts`, "--portal", "http://10.9.0.1:8081", "--token", "client-token-1", "--resource", "res-lab", "--host", "10.9.0.2", "--tun", `pc${clients++}${tag}`.slice(0, 15)], { GLASSGATE_LOG: "info" });
      return { proc, out: watch(proc, "client") };
    },
    curl: () => cl.exec(["curl", "-s", "--max-time", "5", "http://10.77.0.5/"], { allowFail: true }),
  };
}

/** The admin API is in the gateway's namespace: ask it from there. */
export function adminConnections(w: World): { cid: number; portal?: { client_id: string }; [field: string]: unknown }[] {
  const out = w.gw.exec(["curl", "-s", "-H", `authorization: Bearer ${ADMIN_TOKEN}`, "http://10.9.0.1:8080/api/connections"], { allowFail: true });
  return out ? (JSON.parse(out) as { connections: { cid: number; portal?: { client_id: string }; [field: string]: unknown }[] }).connections : [];
}

