// The headless client end to end in namespaces the test creates: tools/headless-client (a real
// process with its TUN) → the dev portal (tools/dev-portal, real WebSockets) → a gateway →
// a resource server (Bun HTTP) in its own namespace; curl on the client reaches it, and the
// portal's reject_access cuts it off with a goodbye the client reports.
// Gateways: `glassgate up --portal` (the product), and test/support/headless-gateway.ts (GatewayNode
// + a controlled IceAgent over the portal's gateway topic: the double the client was first built
// against). Paths: direct, and relayed through coturn when UDP between the two hosts is blocked.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { link, Netns, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { watch } from "./support/process-lines.ts";

const SKIP = skipReason(["ip", "curl", "iptables"]);
const NO_COTURN = skipReason(["turnserver"]);
const BUN = process.execPath;
const ROOT = `${import.meta.dir}/..`;

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});


interface World {
  cl: Netns;
  gw: Netns;
  dir: string;
  tag: string;
  client: ReturnType<typeof watch>;
  clientProc: Subprocess<"ignore", "pipe", "pipe">;
  gateway: ReturnType<typeof watch>;
  portalOut: ReturnType<typeof watch>;
  curl: () => string;
  /** A form post to the dev portal's page (what an operator's click does). */
  operator: (path: string, form: string) => void;
  diagnose: () => string;
}

/**
 * client 10.9.0.2 ── 10.9.0.1 gateway + dev portal (+ coturn on 10.9.0.1:3478) 10.77.0.1 ── 10.77.0.5 resource
 */
async function world(opts: { gateway: "glassgate" | "double"; relay: boolean }): Promise<World> {
  const tag = uniqueTag();
  const cl = new Netns(`hcl${tag}`);
  const gw = new Netns(`hgw${tag}`);
  const res = new Netns(`hrs${tag}`);
  cleanups.push(() => cl.destroy(), () => gw.destroy(), () => res.destroy());
  link(cl, "eth0", "10.9.0.2/24", gw, "cl0", "10.9.0.1/24");
  link(gw, "res0", "10.77.0.1/24", res, "eth0", "10.77.0.5/24");
  res.exec(["ip", "route", "add", "default", "via", "10.77.0.1"]);
  gw.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  gw.exec(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);

  const dir = mkdtempSync(join(tmpdir(), "headless-"));
  // Seed, coturn's files and (on failure) the logs; HEADLESS_KEEP_LOGS=1 keeps them for a look.
  if (!process.env.HEADLESS_KEEP_LOGS) cleanups.unshift(() => rmSync(dir, { recursive: true, force: true })); // last: after the processes
  const seedPath = join(dir, "seed.json");
  writeFileSync(seedPath, JSON.stringify({
    gateways: [{ id: "gw-1", name: "edge-1", token: "gateway-token-1", ipv4: "100.64.0.1", ipv6: "fd00:2021:1111::1" }],
    clients: [{ id: "client-1", name: "laptop", token: "client-token-1", ipv4: "100.64.0.2", ipv6: "fd00:2021:1111::2" }],
    resources: [{ type: "cidr", id: "res-lab", name: "lab", address: "10.77.0.0/24", filters: [] }],
    policies: [{ client: "client-1", resource: "res-lab", expires_in: 3600 }],
    relays: opts.relay ? [{ type: "turn", id: "relay-1", addr: "10.9.0.1:3478", username: "alice", password: "wonderland", expires_at: Math.floor(Date.now() / 1000) + 86400 }] : [],
  }));

  if (opts.relay) {
    writeFileSync(join(dir, "turnserver.conf"), [
      "listening-ip=10.9.0.1", "listening-port=3478", "relay-ip=10.9.0.1", "min-port=49160", "max-port=49200",
      "realm=firezone", "fingerprint", "no-tls", "no-dtls", "no-cli", "no-rfc5780", "lt-cred-mech", "user=alice:wonderland",
      `userdb=${join(dir, "turndb")}`, `pidfile=${join(dir, "turnserver.pid")}`, `log-file=${join(dir, "turn.log")}`, "simple-log",
    ].join("\n") + "\n");
    gw.start(["turnserver", "-c", join(dir, "turnserver.conf"), "--no-cli"]);
    // Only the relay's port between the client's host and the gateway's: no direct path.
    cl.exec(["iptables", "-A", "OUTPUT", "-p", "udp", "-d", "10.9.0.1", "!", "--dport", "3478", "-j", "DROP"]);
    cl.exec(["iptables", "-A", "INPUT", "-p", "udp", "-s", "10.9.0.1", "!", "--sport", "3478", "-j", "DROP"]);
  }

  const server = res.start([BUN, "-e", `Bun.serve({ hostname: "10.77.0.5", port: 80, fetch: () => new Response("hello from the resource\\n") }); console.log("listening")`]);
  const serverOut = watch(server, "resource");
  const portalOut = watch(gw.start([BUN, `${ROOT}/tools/dev-portal/main.ts`, "--seed", seedPath, "--listen", "10.9.0.1:8081"]), "portal");
  await serverOut.next((l) => l.text === "listening", "listening");
  await waitFor("the dev portal to listen", () => gw.exec(["ss", "-ltn"], { allowFail: true }).includes("10.9.0.1:8081") || undefined, 10_000);

  let gateway: ReturnType<typeof watch>;
  const gwTun = `ggw${tag}`.slice(0, 15);
  if (opts.gateway === "double") {
    gateway = watch(gw.start([BUN, `${ROOT}/test/support/headless-gateway.ts`], { PORTAL_URL: "http://10.9.0.1:8081", TOKEN: "gateway-token-1", HOST_ADDRESS: "10.9.0.1", TUN_NAME: gwTun }), "gateway double");
    await gateway.next((l) => l.kind === "joined", "joined");
  } else {
    gateway = watch(gw.start([BUN, `${ROOT}/src/cli.ts`, "up", "--portal", "--interface", gwTun, "--data", join(dir, "gw-data")], {
      FIREZONE_API_URL: "http://10.9.0.1:8081", FIREZONE_TOKEN: "gateway-token-1", FIREZONE_ID: "gw-1", FIREZONE_NAME: "edge-1", GLASSGATE_LOG: "info",
    }), "glassgate", "stderr"); // the gateway's JSON log lines are on stderr
    await gateway.next((l) => l.msg === "joined portal channel", "joined", 30_000);
  }

  const clientProc = cl.start([BUN, `${ROOT}/tools/headless-client/main.ts`, "--portal", "http://10.9.0.1:8081", "--token", "client-token-1", "--resource", "res-lab", "--host", "10.9.0.2", "--tun", `gcl${tag}`.slice(0, 15)], { GLASSGATE_LOG: process.env.HEADLESS_LOG ?? "info" });
  const client = watch(clientProc, "client");
  const diagnose = () => {
    writeFileSync(join(dir, "client.stderr"), client.other.join("\n"));
    writeFileSync(join(dir, "gateway.log"), [...gateway.lines.map((l) => JSON.stringify(l)), ...gateway.other].join("\n"));
    return `client: ${JSON.stringify(client.lines.slice(-15))}\nlogs in ${dir} (kept with HEADLESS_KEEP_LOGS=1)\nclient routes: ${cl.exec(["ip", "route"])}\ngateway routes: ${gw.exec(["ip", "route"])}\nportal: ${portalOut.lines.slice(-12).map((l) => JSON.stringify(l)).join(" ")}`;
  };
  return {
    cl, gw, dir, tag, client, clientProc, gateway, portalOut, diagnose,
    curl: () => cl.exec(["curl", "-s", "--max-time", "5", "http://10.77.0.5/"], { allowFail: true }),
    operator: (path, form) => void gw.exec(["curl", "-s", "-o", "/dev/null", "-X", "POST", "-d", form, `http://10.9.0.1:8081${path}`]),
  };
}

/** Until the client is connected and its handshake done; what each side said if it never is. */
async function connected(w: World) {
  try {
    const c = await w.client.next((l) => l.event === "connected", "connected", 30_000);
    const h = await w.client.next((l) => l.event === "handshake_completed", "handshake");
    console.log(`connected over ${String(c.pair)} ${c.ms} ms after flow_created, WireGuard up at ${h.ms} ms`);
    return c;
  } catch (err) {
    throw new Error(`${String(err)}\n${w.diagnose()}`);
  }
}

async function reaches(w: World) {
  const body = w.curl();
  if (body !== "hello from the resource\n") console.error(w.diagnose());
  expect(body).toBe("hello from the resource\n");
}

describe.skipIf(SKIP !== undefined)("headless client end to end (dev portal, gateway, resource)", () => {
  if (SKIP) console.warn(`skipping headless client e2e: ${SKIP}`);

  test("glassgate up --portal, direct: curl reaches the resource; reject_access ends it with a goodbye", async () => {
    const w = await world({ gateway: "glassgate", relay: false });
    const c = await connected(w);
    expect(c).toMatchObject({ gatewayId: "gw-1", relayed: false });
    expect(String(c.pair)).toMatch(/^host 10\.9\.0\.2:\d+ -> host 10\.9\.0\.1:52625$/);
    await reaches(w);
    w.operator("/policies/revoke", "client=client-1&resource=res-lab");
    await w.client.next((l) => l.event === "goodbye", "goodbye");
    expect(w.curl()).toBe("");
  }, 90_000);

  test.skipIf(NO_COTURN !== undefined)("glassgate up --portal, relayed through coturn: curl reaches the resource; the authorization expiring ends it with a goodbye", async () => {
    const w = await world({ gateway: "glassgate", relay: true });
    const c = await connected(w);
    expect(c).toMatchObject({ gatewayId: "gw-1", relayed: true });
    expect(String(c.pair)).toMatch(/^relay 10\.9\.0\.1:49\d{3} -> /);
    await reaches(w);
    // The operator moves the flow's expiry 2 s ahead: access_authorization_expiry_updated.
    w.operator("/flows/expiry", "client=client-1&resource=res-lab&expires_in=2");
    await w.client.next((l) => l.event === "goodbye", "goodbye", 15_000);
    expect(w.curl()).toBe("");
  }, 90_000);

  test("the gateway double (GatewayNode + controlled ICE), direct: curl works; reject_access ends it with a goodbye", async () => {
    const w = await world({ gateway: "double", relay: false });
    const c = await connected(w);
    expect(c).toMatchObject({ gatewayId: "gw-1", relayed: false });
    await w.gateway.next((l) => l.kind === "nominated", "nominated");
    await reaches(w);
    w.operator("/policies/revoke", "client=client-1&resource=res-lab");
    await w.gateway.next((l) => l.kind === "goodbye_sent", "goodbye_sent");
    await w.client.next((l) => l.event === "goodbye", "goodbye");
    expect(w.curl()).toBe("");
  }, 90_000);
});
