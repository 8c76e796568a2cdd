// The portal client (src/portal core + src/io/portal-socket shell) against the dev portal over real
// WebSockets on loopback: join, init, heartbeats, a whole flow with a client, ICE relayed, a portal
// restart, garbage, a stalled join, token expiry, a refused token, a crashed channel — and the dev
// portal against phoenix.js's own Socket. Timers are Firezone's except where a test shortens one
// to keep real time short; the exact numbers are the simulated-time tests' (src/portal/channel.test.ts).
import { afterEach, describe, expect, test } from "bun:test";
import { Socket } from "phoenix";
import { PortalSocket } from "../src/io/portal-socket.ts";
import { clientChannel, EXIT_BAD_CONFIG, gatewayChannel, loginUrl, type ChannelEvent, type ChannelTimers, type PhoenixChannel } from "../src/portal/index.ts";
import { parseSeed } from "../tools/dev-portal/seed.ts";
import { startDevPortal, type DevPortalServer } from "../tools/dev-portal/server.ts";
import type { Record_ } from "../tools/dev-portal/portal.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../src/telemetry/log.ts";

/** Every device logs here (target `portal`), so a test can check what an operator would read. */
const lines: LogLine[] = [];
const logger = new Logger(parseLogFilter("info"), memorySink(lines)).target("portal");

const seed = parseSeed({
  gateways: [{ id: "gw-1", name: "edge-1", token: "gateway-token-1" }],
  clients: [{ id: "client-1", name: "laptop", token: "client-token-1" }],
  resources: [{ type: "cidr", id: "res-lab", name: "lab", address: "10.77.0.0/24", filters: [{ protocol: "tcp", port_range_start: 80, port_range_end: 80 }] }],
  policies: [{ client: "client-1", resource: "res-lab", expires_in: 3600 }],
});

const key = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64");
const UA = "Debian/13 gateway/0.1.0 (x86_64; 6.1.0)";

type AnyEvent = ChannelEvent<{ event: string; payload?: unknown }>;

/** One side's core + shell with everything it reported. */
class Device {
  readonly events: AnyEvent[] = [];
  readonly socket: PortalSocket<never, never>;
  readonly publicKey = key();
  constructor(
    readonly channel: PhoenixChannel<never, never>,
    server: () => DevPortalServer,
    token: string,
    mode: "gateway" | "client",
    onEvent?: (ev: AnyEvent, d: Device) => void,
  ) {
    this.socket = new PortalSocket<never, never>({
      channel,
      url: () => loginUrl({ apiUrl: server().url, token, id: `${mode}-machine-id`, name: `${mode} under test`, publicKey: this.publicKey, mode }),
      userAgent: UA.replace("gateway", mode === "gateway" ? "gateway" : "headless-client"),
      log: logger,
      onEvent: (ev) => {
        this.events.push(ev as AnyEvent);
        onEvent?.(ev as AnyEvent, this);
      },
    });
  }
  send(event: string, payload: unknown) {
    this.socket.send({ event, payload } as never);
  }
  count(kind: AnyEvent["kind"]): number {
    return this.events.filter((e) => e.kind === kind).length;
  }
  messages(event: string): unknown[] {
    return this.events.flatMap((e) => (e.kind === "message" && e.message.event === event ? [e.message.payload] : []));
  }
}

/** Waits until `cond` holds; fails naming `what` after a generous bound (a hang, not a threshold). */
async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

let server: DevPortalServer;
const devices: Device[] = [];
afterEach(async () => {
  lines.length = 0;
  for (const d of devices.splice(0)) d.socket.stop();
  await server?.stop();
});

function gateway(timers?: Partial<ChannelTimers>, onEvent?: (ev: AnyEvent, d: Device) => void, token = "gateway-token-1"): Device {
  const d = new Device(gatewayChannel({ random: () => 0.5, timers }) as never, () => server, token, "gateway", onEvent);
  devices.push(d);
  d.socket.start();
  return d;
}

const seen = (event: string, side?: string) => (r: Record_) => r.event === event && (!side || r.side === side);

describe("gateway ↔ dev portal over a real WebSocket", () => {
  test("joins, receives init with its interface, and the portal sees its User-Agent, external_id and key", async () => {
    server = startDevPortal({ seed });
    const gw = gateway();
    await until("init", () => gw.messages("init").length === 1);
    expect(gw.count("joined")).toBe(1);
    expect(gw.messages("init")[0]).toMatchObject({ interface: { ipv4: "100.64.0.1", ipv6: "fd00:2021:1111::1" }, account_slug: "dev" });
    const s = server.portal.sessions.get("gateway:gw-1")!;
    expect(s).toMatchObject({ userAgent: UA, externalId: "gateway-machine-id", name: "gateway under test", publicKey: gw.publicKey, joined: true });
    expect(server.portal.records.find(seen("phx_join"))).toMatchObject({ dir: "in", payload: null });
  });

  test("heartbeats go to topic phoenix and are answered: the channel stays up across several", async () => {
    server = startDevPortal({ seed });
    const gw = gateway({ heartbeatIntervalMs: 100 });
    await until("3 heartbeats", () => server.portal.records.filter(seen("heartbeat")).length >= 3);
    expect(gw.count("reconnect_scheduled")).toBe(0);
    expect(gw.channel.stats().state).toBe("joined");
  });

  test("a whole flow: client create_flow → gateway authorize_flow → flow_authorized seen by the portal → client flow_created; ICE relayed both ways", async () => {
    server = startDevPortal({ seed });
    const gw = gateway(undefined, (ev, d) => {
      if (ev.kind === "message" && ev.message.event === "authorize_flow") {
        const p = ev.message.payload as { ref: string; client: { id: string } };
        d.send("flow_authorized", { ref: p.ref });
        d.send("broadcast_ice_candidates", { client_ids: [p.client.id], candidates: ["candidate:1 1 udp 2130706431 192.0.2.1 52625 typ host"] });
      }
    });
    await until("gateway joined", () => gw.count("joined") === 1);
    const client = new Device(clientChannel({ random: () => 0.5 }) as never, () => server, "client-token-1", "client");
    devices.push(client);
    client.socket.start();
    await until("client init", () => client.messages("init").length === 1);
    expect(client.messages("init")[0]).toMatchObject({ resources: [{ id: "res-lab", type: "cidr", gateway_groups: [{ id: "site-1" }] }] });
    client.send("create_flow", { resource_id: "res-lab", connected_gateway_ids: [] });
    await until("flow_created", () => client.messages("flow_created").length === 1);
    const auth = gw.messages("authorize_flow")[0] as { ref: string; client: { public_key: string }; resource: { type: string; id: string } };
    expect(auth.client.public_key).toBe(client.publicKey);
    expect(auth.resource).toMatchObject({ type: "cidr", id: "res-lab" });
    expect(server.portal.records.find(seen("flow_authorized", "gateway"))).toMatchObject({ dir: "in", payload: { ref: auth.ref } });
    expect(server.portal.flows.get("client-1/res-lab")?.status).toBe("authorized");
    expect(client.messages("flow_created")[0]).toMatchObject({ gateway_id: "gw-1", gateway_public_key: gw.publicKey, resource_id: "res-lab" });
    await until("gateway candidates at the client", () => client.messages("ice_candidates").length === 1);
    expect(client.messages("ice_candidates")[0]).toEqual({ gateway_id: "gw-1", candidates: ["candidate:1 1 udp 2130706431 192.0.2.1 52625 typ host"] });
    client.send("broadcast_ice_candidates", { gateway_ids: ["gw-1"], candidates: ["candidate:2 1 udp 1694498815 198.51.100.7 40000 typ srflx"] });
    client.send("broadcast_invalidated_ice_candidates", { gateway_ids: ["gw-1"], candidates: ["candidate:2 1 udp 1694498815 198.51.100.7 40000 typ srflx"] });
    await until("client candidates at the gateway", () => gw.messages("invalidate_ice_candidates").length === 1);
    expect(gw.messages("ice_candidates")[0]).toEqual({ client_id: "client-1", candidates: ["candidate:2 1 udp 1694498815 198.51.100.7 40000 typ srflx"] });

    // the operator's page: move the expiry, then revoke → access_authorization_expiry_updated, reject_access
    const post = (path: string, body: Record<string, string>, origin = server.url) =>
      fetch(`${server.url}${path}`, { method: "POST", body: new URLSearchParams(body), headers: { origin }, redirect: "manual" });
    expect((await post("/flows/expiry", { client: "client-1", resource: "res-lab", expires_in: "120" })).status).toBe(303);
    await until("expiry update", () => gw.messages("access_authorization_expiry_updated").length === 1);
    expect((await post("/policies/revoke", { client: "client-1", resource: "res-lab" }, "http://elsewhere.example")).status).toBe(403);
    expect((await post("/policies/revoke", { client: "client-1", resource: "res-lab" })).status).toBe(303);
    await until("reject_access", () => gw.messages("reject_access").length === 1);
    expect(gw.messages("reject_access")[0]).toEqual({ client_id: "client-1", resource_id: "res-lab" });
    const page = await (await fetch(`${server.url}/`)).text();
    expect(page).toContain("edge-1");
    expect(page).toContain("reject_access");
    expect(page).not.toContain("<script");
    // revoked: a new create_flow is refused
    client.send("create_flow", { resource_id: "res-lab", connected_gateway_ids: [] });
    await until("flow_creation_failed", () => client.messages("flow_creation_failed").length === 1);
    expect(client.messages("flow_creation_failed")[0]).toEqual({ resource_id: "res-lab", reason: "forbidden" });
    expect(gw.count("malformed") + client.count("malformed")).toBe(0);
  });

  test("the portal restarts: the gateway reconnects, rejoins and gets a fresh init", async () => {
    server = startDevPortal({ seed });
    const gw = gateway();
    await until("first init", () => gw.messages("init").length === 1);
    const { port, portal } = server;
    await server.stop();
    await until("reconnect scheduled", () => gw.count("reconnect_scheduled") >= 1);
    server = startDevPortal({ seed, port, portal });
    await until("second init", () => gw.messages("init").length === 2);
    expect(gw.count("joined")).toBe(2);
    expect(gw.events.find((e) => e.kind === "reconnect_scheduled")).toMatchObject({ afterMs: 0 });
    expect(gw.count("fatal")).toBe(0);
  });

  test("a garbage frame is counted and reported, and the channel carries on", async () => {
    server = startDevPortal({ seed });
    const gw = gateway();
    await until("joined", () => gw.count("joined") === 1);
    server.portal.sendRaw("gateway", "gw-1", "this is not json");
    server.portal.sendRaw("gateway", "gw-1", JSON.stringify({ topic: "gateway", event: "reject_access", payload: { client_id: 7 }, ref: null }));
    await until("2 malformed", () => gw.count("malformed") === 2);
    expect(gw.events.filter((e) => e.kind === "malformed").map((e) => (e as { event: string | null }).event)).toEqual([null, "reject_access"]);
    expect(gw.channel.stats()).toMatchObject({ malformed: 2, state: "joined" });
    expect(lines.filter((l) => l.msg === "malformed portal message").at(-1)).toMatchObject({ level: "warn", target: "portal", topic: "gateway", event: "reject_access", ref: null, issue: expect.stringContaining("payload.client_id"), count: 2 });
    server.portal.sendRaw("gateway", "gw-1", JSON.stringify({ topic: "gateway", event: "reject_access", payload: { client_id: "client-1", resource_id: "res-lab" }, ref: null }));
    await until("a good message after", () => gw.messages("reject_access").length === 1);
  });

  test("a stalled join: the socket is dropped after the join timeout and the next join works", async () => {
    server = startDevPortal({ seed });
    server.portal.behaviour.stallJoins = true;
    const gw = gateway({ joinTimeoutMs: 300 });
    await until("join timeout", () => gw.count("reconnect_scheduled") >= 1);
    expect(gw.events[0]).toMatchObject({ kind: "reconnect_scheduled", reason: "join of gateway unanswered after 300 ms" });
    expect(gw.count("joined")).toBe(0);
    server.portal.behaviour.stallJoins = false;
    await until("joined", () => gw.count("joined") === 1);
    expect(server.portal.records.filter(seen("phx_join")).length).toBeGreaterThanOrEqual(2);
  });

  test("token_expired from the portal is fatal with exit code 2", async () => {
    server = startDevPortal({ seed });
    const gw = gateway();
    await until("joined", () => gw.count("joined") === 1);
    server.portal.expireToken("gateway", "gw-1");
    await until("fatal", () => gw.count("fatal") === 1);
    expect(gw.events.find((e) => e.kind === "fatal")).toMatchObject({ reason: "token_expired", exitCode: EXIT_BAD_CONFIG });
    await Bun.sleep(50);
    expect(gw.count("reconnect_scheduled")).toBe(0);
  });

  test("a refused token (401 on the upgrade) is fatal with exit code 2 naming FIREZONE_TOKEN", async () => {
    server = startDevPortal({ seed });
    const gw = gateway(undefined, undefined, "wrong-token-123");
    await until("fatal", () => gw.count("fatal") === 1);
    expect(gw.events.find((e) => e.kind === "fatal")).toMatchObject({ reason: "unauthorized", exitCode: EXIT_BAD_CONFIG, message: expect.stringContaining("HTTP 401") });
    expect(server.portal.sessions.size).toBe(0);
  });

  test("a crashed channel ('unmatched topic' to a push) makes the gateway join again on the same socket", async () => {
    server = startDevPortal({ seed });
    const gw = gateway();
    await until("joined", () => gw.count("joined") === 1);
    server.portal.forgetJoin("gateway", "gw-1");
    gw.send("broadcast_ice_candidates", { client_ids: ["client-1"], candidates: [] });
    await until("rejoined", () => gw.count("joined") === 2);
    expect(gw.count("reconnect_scheduled")).toBe(0);
    expect(gw.messages("init")).toHaveLength(2);
  });
});

test("phoenix.js's own Socket joins the dev portal with v1 object frames (encode/decode as Phoenix 1.3's serializer)", async () => {
  server = startDevPortal({ seed });
  const socket = new Socket(`${server.url.replace("http", "ws")}/gateway`, {
    vsn: "1.0.0",
    params: { token: "gateway-token-1", external_id: "x", name: "phx", public_key: key() },
    encode: (msg: { topic: string; event: string; payload: unknown; ref: string | null }, cb: (s: string) => void) => cb(JSON.stringify({ topic: msg.topic, event: msg.event, payload: msg.payload, ref: msg.ref })),
    decode: (raw: string, cb: (m: unknown) => void) => cb(JSON.parse(raw)),
    reconnectAfterMs: () => 60_000,
  });
  const got: { status?: string; init?: unknown } = {};
  socket.connect();
  const channel = socket.channel("gateway", {});
  channel.on("init", (p) => (got.init = p));
  channel.join().receive("ok", () => (got.status = "ok")).receive("error", () => (got.status = "error"));
  try {
    await until("phoenix.js joined with init", () => got.status === "ok" && got.init !== undefined);
    expect(got.init).toMatchObject({ interface: { ipv4: "100.64.0.1" } });
    expect(socket.endPointURL()).toContain("vsn=1.0.0");
  } finally {
    socket.disconnect();
  }
});

test("a portal that accepts TCP but never answers the upgrade: the shell drops the socket at the connect timeout and tries again", async () => {
  const accepted: number[] = [];
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: () => void accepted.push(1), data() {} } });
  const fake = { url: `http://127.0.0.1:${silent.port}` } as DevPortalServer;
  const d = new Device(gatewayChannel({ random: () => 0.5, timers: { connectTimeoutMs: 150 } }) as never, () => fake, "gateway-token-1", "gateway");
  d.socket.start();
  try {
    await until("two attempts timed out", () => d.events.filter((e) => e.kind === "reconnect_scheduled").length >= 2);
    expect(d.events.filter((e) => e.kind === "reconnect_scheduled").map((e) => (e as { reason: string }).reason)).toEqual(["connecting timed out after 150 ms", "connecting timed out after 150 ms"]);
    expect(accepted.length).toBeGreaterThanOrEqual(2);
    expect(d.count("joined")).toBe(0);
  } finally {
    d.socket.stop();
    silent.stop(true);
  }
});

describe("tools/portal-probe as a process", () => {
  const probe = (env: Record<string, string>) =>
    Bun.spawn(["bun", "tools/portal-probe.ts"], { cwd: `${import.meta.dir}/..`, env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/root", GLASSGATE_LOG: "info", ...env }, stdout: "pipe", stderr: "pipe" });

  test("a refused token exits 2 with a message naming FIREZONE_TOKEN", async () => {
    server = startDevPortal({ seed });
    const p = probe({ FIREZONE_API_URL: server.url, FIREZONE_TOKEN: "not-the-token", FIREZONE_ID: "probe" });
    expect(await p.exited).toBe(2);
    expect(await new Response(p.stderr).text()).toContain("portal refused the connection with HTTP 401: check FIREZONE_TOKEN");
  });

  test("token_expired after a join exits 2; the portal saw the join, a User-Agent and a public key", async () => {
    server = startDevPortal({ seed });
    const p = probe({ FIREZONE_API_URL: server.url, FIREZONE_TOKEN: "gateway-token-1", FIREZONE_ID: "5bd8e0a4-4c1f-4e7f-9a55-2f0f7a1c0b11", FIREZONE_NAME: "probe" });
    try {
      await until("probe joined", () => server.portal.sessions.get("gateway:gw-1")?.joined === true);
      const s = server.portal.sessions.get("gateway:gw-1")!;
      expect(s.userAgent).toMatch(/^[^/]+\/\S+ gateway\/\d+\.\d+\.\d+ \(\S+; \S+\)$/);
      expect(s.externalId).toMatch(/^[0-9a-f]{64}$/);
      expect(s.publicKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      server.portal.expireToken("gateway", "gw-1");
      expect(await p.exited).toBe(2);
      expect(await new Response(p.stderr).text()).toContain("token_expired");
    } finally {
      p.kill();
    }
  });

  test("no token at all exits 2 naming FIREZONE_TOKEN", async () => {
    const p = probe({});
    expect(await p.exited).toBe(2);
    expect(await new Response(p.stderr).text()).toContain("FIREZONE_TOKEN: not set");
  });
});

test("a refused connection is retried, and the token never shows in what is reported or logged", async () => {
  const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = closed.port;
  closed.stop(true);
  const fake = { url: `http://127.0.0.1:${port}` } as DevPortalServer;
  const d = new Device(gatewayChannel({ random: () => 0.5 }) as never, () => fake, "secret-token-xyz", "gateway");
  lines.length = 0;
  d.socket.start();
  try {
    await until("two retries", () => d.count("reconnect_scheduled") >= 2);
    const reasons = d.events.filter((e) => e.kind === "reconnect_scheduled").map((e) => (e as { reason: string }).reason);
    expect(reasons[0]).toContain("token=REDACTED");
    expect(JSON.stringify(d.events)).not.toContain("secret-token-xyz");
    expect(JSON.stringify(lines)).not.toContain("secret-token-xyz");
  } finally {
    d.socket.stop();
  }
});
