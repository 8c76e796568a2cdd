// Portal mode end to end with every real piece, in namespaces this test creates: the headless client
// (tools/headless-client, its own TUN) → the dev portal → `glassgate up --portal` → a resource
// server in its own namespace. Direct: curl works; the portal moving the flow's expiry ends it with
// a goodbye the client reports; a new flow is cut by reject_access the same way. Relayed: the
// gateway's WireGuard port is closed to the client, so ICE settles on the TURN relay (coturn,
// handed out by the portal) and curl still works.
//
//   client 10.9.0.2 ── 10.9.0.1 gateway + dev portal (+ coturn) 10.77.0.1 ── 10.77.0.5 resource
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Netns, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { link, watch, type Watched } from "./support/process-lines.ts";

const SKIP = skipReason(["ip", "curl", "turnserver", "iptables"]);
const BUN = process.execPath;
const ROOT = `${import.meta.dir}/..`;
const TURN_USER = "gw-relay";
const TURN_PASS = "relay-password-1";
const ADMIN_TOKEN = "portal-client-e2e-token-0123456789";

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface World {
  cl: Netns;
  gw: Netns;
  dir: string;
  gateway: Watched;
  startClient(): { proc: ReturnType<Netns["start"]>; out: Watched };
  curl(): string;
}

async function world(opts: { relay: boolean }): Promise<World> {
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

  const gateway = watch(gw.start([BUN, `${ROOT}/src/cli.ts`, "up", "--portal", "--interface", `pgt${tag}`.slice(0, 15), "--admin", "10.9.0.1:8080", "--data", join(dir, "data")], {
    FIREZONE_API_URL: "http://10.9.0.1:8081",
    FIREZONE_TOKEN: "gateway-token-1",
    FIREZONE_ID: "gw-1",
    GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN,
    GLASSGATE_LOG: process.env.PORTAL_E2E_LOG ?? "info",
  }), "gateway", "stderr");
  await gateway.next((l) => l.msg === "TUN configured from the portal", "its TUN from init");

  let clients = 0;
  return {
    cl,
    gw,
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
function adminConnections(w: World): { cid: number; portal?: { client_id: string } }[] {
  const out = w.gw.exec(["curl", "-s", "-H", `authorization: Bearer ${ADMIN_TOKEN}`, "http://10.9.0.1:8080/api/connections"], { allowFail: true });
  return out ? (JSON.parse(out) as { connections: { cid: number; portal?: { client_id: string } }[] }).connections : [];
}

describe.skipIf(SKIP !== undefined)("portal mode end to end: headless client, dev portal, glassgate up --portal, resource", () => {
  if (SKIP) console.warn(`skipping portal client e2e: ${SKIP}`);

  test("direct: curl reaches the resource; a moved expiry and reject_access each cut access with a goodbye", async () => {
    const w = await world({ relay: false });
    const a = w.startClient();
    const connected = await a.out.next((l) => l.event === "connected", "connected", 30_000);
    expect(connected).toMatchObject({ gatewayId: "gw-1", relayed: false });
    await a.out.next((l) => l.event === "handshake_completed", "handshake");
    expect(w.curl()).toBe("hello from the resource\n");
    const conns = adminConnections(w);
    expect(conns).toHaveLength(1);
    expect(conns[0]!.portal).toMatchObject({ client_id: "client-1" });
    const cid = conns[0]!.cid;
    // The gateway's lines about this client carry its cid, the portal's client id and the resource.
    // Awaited, not looked up: curl can succeed before the gateway's log lines have been read.
    expect(await w.gateway.next((l) => l.msg === "authorization granted", "authorization granted")).toMatchObject({ cid, client_id: "client-1", rid: "res-lab", gid: expect.any(String) });
    expect(await w.gateway.next((l) => l.target === "tunnel" && l.msg === "handshake completed", "handshake completed")).toMatchObject({ cid, client_id: "client-1", gid: expect.any(String) });

    // The operator moves the flow's end 2 s ahead: access_authorization_expiry_updated, then the
    // node's sweep ends it and the gateway says goodbye.
    w.gw.exec(["curl", "-s", "-o", "/dev/null", "-X", "POST", "-d", "client=client-1&resource=res-lab&expires_in=2", "http://10.9.0.1:8081/flows/expiry"]);
    await w.gateway.next((l) => l.msg === "authorization expired" && l.client_id === "client-1", "the expiry", 10_000);
    await w.gateway.next((l) => l.msg === "goodbye sent: no resources left" && l.cid === cid, "goodbye");
    await a.out.next((l) => l.event === "goodbye", "goodbye");
    expect(w.curl()).toBe("");
    a.proc.kill("SIGTERM");
    await a.proc.exited;

    // A new client asks again; then the operator revokes the policy: reject_access, goodbye.
    const b = w.startClient();
    await b.out.next((l) => l.event === "handshake_completed", "handshake", 30_000);
    expect(w.curl()).toBe("hello from the resource\n");
    w.gw.exec(["curl", "-s", "-o", "/dev/null", "-X", "POST", "-d", "client=client-1&resource=res-lab", "http://10.9.0.1:8081/policies/revoke"]);
    await w.gateway.next((l) => l.msg === "authorization revoked by the portal", "reject_access");
    await b.out.next((l) => l.event === "goodbye", "goodbye");
    expect(w.curl()).toBe("");
  }, 120_000);

  test("relayed: with the direct path closed, ICE goes through the portal's TURN relay and curl still works", async () => {
    const w = await world({ relay: true });
    const c = w.startClient();
    const connected = await c.out.next((l) => l.event === "connected", "connected", 40_000);
    expect(connected).toMatchObject({ gatewayId: "gw-1", relayed: true });
    await c.out.next((l) => l.event === "handshake_completed", "handshake", 20_000);
    expect(w.curl()).toBe("hello from the resource\n");
    expect(w.gateway.lines.some((l) => l.msg === "relays changed" || (l.msg === "portal init applied" && l.relays === 1))).toBe(true);
  }, 120_000);
});
