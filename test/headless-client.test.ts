// The headless client end to end in namespaces the test creates: tools/headless-client (a real
// process with its TUN) → the dev portal (tools/dev-portal, real WebSockets) → a gateway →
// a resource server (Bun HTTP) in its own namespace; curl on the client reaches it, and the
// portal's reject_access cuts it off with a goodbye the client reports.
// The gateway here is test/support/headless-gateway.ts (GatewayNode + a controlled IceAgent over
// the portal's gateway topic) until `glassgate up --portal` and ICE in the node land.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { Netns, sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const SKIP = skipReason(["ip", "curl"]);
const BUN = process.execPath;
const ROOT = `${import.meta.dir}/..`;

type Line = Record<string, unknown>;

/** Collects a process's JSON stdout lines (others are kept as text) and its stderr. */
function watch(p: Subprocess<"ignore", "pipe", "pipe">, name: string) {
  const lines: Line[] = [];
  const stderr: string[] = [];
  const read = async (s: ReadableStream<Uint8Array>, on: (l: string) => void) => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of s) {
      buf += dec.decode(chunk);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (l.trim()) on(l);
      }
    }
  };
  void read(p.stdout, (l) => {
    try {
      lines.push(JSON.parse(l) as Line);
    } catch {
      lines.push({ text: l });
    }
  });
  void read(p.stderr, (l) => stderr.push(l));
  const next = async (pred: (l: Line) => boolean, what: string, ms = 20_000) => {
    try {
      return await waitFor(`${what} from ${name}`, () => lines.find(pred), ms);
    } catch (err) {
      throw new Error(`${String(err)}; stdout: ${JSON.stringify(lines.slice(-12))}; stderr: ${stderr.slice(-12).join(" | ")}`);
    }
  };
  return { lines, stderr, next };
}

function link(a: Netns, aIf: string, aAddr: string, b: Netns, bIf: string, bAddr: string) {
  const tmpA = `ha${uniqueTag()}`;
  const tmpB = `hb${uniqueTag()}`;
  sh(["ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB]);
  sh(["ip", "link", "set", tmpA, "netns", a.name, "name", aIf]);
  sh(["ip", "link", "set", tmpB, "netns", b.name, "name", bIf]);
  a.exec(["ip", "addr", "add", aAddr, "dev", aIf]);
  b.exec(["ip", "addr", "add", bAddr, "dev", bIf]);
  a.exec(["ip", "link", "set", aIf, "up"]);
  b.exec(["ip", "link", "set", bIf, "up"]);
}

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe.skipIf(SKIP !== undefined)("headless client end to end (dev portal, gateway, resource)", () => {
  if (SKIP) console.warn(`skipping headless client e2e: ${SKIP}`);

  test("curl through the tunnel reaches the resource; reject_access ends it with a goodbye", async () => {
    const tag = uniqueTag();
    const cl = new Netns(`hcl${tag}`);
    const gw = new Netns(`hgw${tag}`);
    const res = new Netns(`hrs${tag}`);
    cleanups.push(() => cl.destroy(), () => gw.destroy(), () => res.destroy());
    // client 10.9.0.2 ── 10.9.0.1 gateway (+ portal) 10.77.0.1 ── 10.77.0.5 resource
    link(cl, "eth0", "10.9.0.2/24", gw, "cl0", "10.9.0.1/24");
    link(gw, "res0", "10.77.0.1/24", res, "eth0", "10.77.0.5/24");
    res.exec(["ip", "route", "add", "default", "via", "10.77.0.1"]);
    gw.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    gw.exec(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);

    const dir = mkdtempSync(join(tmpdir(), "headless-"));
    const seedPath = join(dir, "seed.json");
    writeFileSync(seedPath, JSON.stringify({
      gateways: [{ id: "gw-1", name: "edge-1", token: "gateway-token-1", ipv4: "100.64.0.1", ipv6: "fd00:2021:1111::1" }],
      clients: [{ id: "client-1", name: "laptop", token: "client-token-1", ipv4: "100.64.0.2", ipv6: "fd00:2021:1111::2" }],
      resources: [{ type: "cidr", id: "res-lab", name: "lab", address: "10.77.0.0/24" }],
      policies: [{ client: "client-1", resource: "res-lab", expires_in: 3600 }],
    }));

    const server = res.start([BUN, "-e", `Bun.serve({ hostname: "10.77.0.5", port: 80, fetch: () => new Response("hello from the resource\\n") }); console.log("listening")`]);
    const serverOut = watch(server, "resource");
    const portal = gw.start([BUN, `${ROOT}/tools/dev-portal/main.ts`, "--seed", seedPath, "--listen", "10.9.0.1:8081"]);
    const portalOut = watch(portal, "portal");
    await serverOut.next((l) => l.text === "listening", "listening");
    await waitFor("the dev portal to listen", () => gw.exec(["ss", "-ltn"], { allowFail: true }).includes("10.9.0.1:8081") || undefined, 10_000).catch((err) => {
      throw new Error(`${String(err)}; portal stderr: ${portalOut.stderr.join(" | ")}`);
    });

    const gateway = watch(gw.start([BUN, `${ROOT}/test/support/headless-gateway.ts`], { PORTAL_URL: "http://10.9.0.1:8081", TOKEN: "gateway-token-1", HOST_ADDRESS: "10.9.0.1", TUN_NAME: `ggw${tag}`.slice(0, 15) }), "gateway");
    await gateway.next((l) => l.kind === "joined", "joined");

    const clientProc = cl.start([BUN, `${ROOT}/tools/headless-client/main.ts`, "--portal", "http://10.9.0.1:8081", "--token", "client-token-1", "--resource", "res-lab", "--host", "10.9.0.2", "--tun", `gcl${tag}`.slice(0, 15)], { GLASSGATE_LOG: process.env.HEADLESS_LOG ?? "info" });
    const client = watch(clientProc, "client");
    const connected = await client.next((l) => l.event === "connected", "connected").catch((err) => {
      throw new Error(`${String(err)}\ngateway: ${JSON.stringify(gateway.lines)} ${gateway.stderr.slice(-10).join(" | ")}\nportal: ${portalOut.lines.slice(-20).map((l) => JSON.stringify(l)).join(" ")}`);
    });
    expect(connected).toMatchObject({ gatewayId: "gw-1", relayed: false });
    expect(String(connected.pair)).toMatch(/^host 10\.9\.0\.2:\d+ -> host 10\.9\.0\.1:\d+$/);
    await gateway.next((l) => l.kind === "nominated", "nominated");
    await client.next((l) => l.event === "handshake_completed", "handshake");

    const curl = () => cl.exec(["curl", "-s", "--max-time", "5", "http://10.77.0.5/"], { allowFail: true });
    const body = curl();
    if (body !== "hello from the resource\n") {
      console.error("client routes:", cl.exec(["ip", "route"]), cl.exec(["ip", "-s", "link"]));
      console.error("gateway:", gw.exec(["ip", "route"]), gw.exec(["ip", "-s", "link"]), JSON.stringify(gateway.lines), gateway.stderr.join("\n"));
      console.error("client:", JSON.stringify(client.lines), client.stderr.slice(-20).join("\n"));
      writeFileSync(join(dir, "client.stderr"), client.stderr.join("\n"));
      console.error(`client stderr in ${dir}/client.stderr`);
      console.error("client process:", sh(["ps", "-L", "-o", "pid,tid,pcpu,stat,wchan:30,comm", "-p", String(clientProc.pid)]));
    }
    expect(body).toBe("hello from the resource\n");

    // The operator revokes the policy: the portal sends reject_access, the gateway says goodbye.
    gw.exec(["curl", "-s", "-o", "/dev/null", "-X", "POST", "-d", "client=client-1&resource=res-lab", "http://10.9.0.1:8081/policies/revoke"]);
    await gateway.next((l) => l.kind === "goodbye_sent", "goodbye_sent");
    await client.next((l) => l.event === "goodbye", "goodbye");
    expect(curl()).toBe("");
  }, 90_000);
});
