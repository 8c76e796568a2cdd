// `bun tools/headless-client/main.ts --portal URL --token T --resource ID`: the headless client's IO
// shell. It owns what the core (client-core.ts) must not: the portal's WebSocket (PortalSocket over
// the sans-IO Phoenix channel, topic `client`), one UDP socket, the TUN (src/io/tun.ts, read by the
// project's reader worker) and its addresses and routes (`ip`), and the clock. Each input goes to
// the core, then everything the core has to say is carried out, then the timer is set for the
// core's next deadline.
//
// Every event is printed as one JSON line on stdout (tests read them); logs go to stderr.
// Exit codes: the portal channel's (2: token refused or expired; 1: join rejected, gave up),
// 1 when the flow cannot be created, 0 on SIGINT/SIGTERM.
import { execFileSync } from "node:child_process";
import { hostname, networkInterfaces } from "node:os";
import { parseArgs } from "node:util";
import pkg from "../../package.json" with { type: "json" };
import { selectAead } from "../../src/crypto/select.ts";
import { encodeKey, generateKeyPair, randomBytes } from "../../src/crypto/x25519.ts";
import { PortalSocket } from "../../src/io/portal-socket.ts";
import { readSystemFacts } from "../../src/io/system-facts.ts";
import { TunReader } from "../../src/io/tun-reader.ts";
import { TunDevice } from "../../src/io/tun.ts";
import { clientChannel, loginUrl, userAgent, type ClientEgress, type ClientIngress } from "../../src/portal/index.ts";
import { Logger, parseLogFilter } from "../../src/telemetry/log.ts";
import type { Endpoint } from "../../src/wire/index.ts";
import { ByteViews } from "./byte-views.ts";
import { HeadlessClient, type ClientEvent } from "./client-core.ts";

const USAGE = "usage: bun tools/headless-client/main.ts --portal URL --token TOKEN --resource ID [--id ID] [--name NAME] [--tun NAME] [--port N] [--host IP]...";
const MTU = 1280;

const { values: args } = parseArgs({
  options: {
    portal: { type: "string" },
    token: { type: "string" },
    resource: { type: "string" },
    id: { type: "string" },
    name: { type: "string" },
    tun: { type: "string", default: "ggclient0" },
    port: { type: "string", default: "0" },
    host: { type: "string", multiple: true },
    help: { type: "boolean" },
  },
});
if (args.help || !args.portal || !args.token || !args.resource) {
  console.error(USAGE);
  process.exit(args.help ? 0 : 64);
}

const log = new Logger(parseLogFilter(process.env.GLASSGATE_LOG ?? "info")).target("headless");
const clock = (): number => performance.timeOrigin + performance.now();
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + "\n");

/** Our host candidates: the given addresses, else every non-loopback IPv4 address of this host. */
function hostAddresses(): string[] {
  if (args.host?.length) return args.host;
  const found: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) found.push(a.address);
  return found;
}

const keys = generateKeyPair();
let core: HeadlessClient | undefined;
let tun: TunDevice | undefined;
let reader: TunReader | undefined;
let installed = new Set<string>();
let flowAt: number | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
const netOut = new Uint8Array(65536);
const tunOut = new Uint8Array(65536);
const netIn = new Uint8Array(65536);
// The data path allocates no view per packet: one per length, reused (byte-views.ts).
const netOutViews = new ByteViews(netOut);
const netInViews = new ByteViews(netIn);

const socket = await Bun.udpSocket({
  hostname: "0.0.0.0",
  port: Number(args.port),
  socket: {
    data(_s, buf, port, address) {
      if (!core) return;
      const from: Endpoint = { address, port };
      // Bun hands a view into a pooled buffer; the STUN and WireGuard parsers read from offset 0.
      netIn.set(buf);
      const n = core.fromNetwork(netInViews.of(buf.length), buf.length, from, tunOut, clock());
      if (n > 0 && tun) tun.write(tunOut, n);
      pump();
    },
    // ICMP errors from checks to unreachable candidates surface here: expected, not fatal.
    error(_s, err) {
      log.debug("udp error", { err: String(err) });
    },
  },
});

core = new HeadlessClient({
  privateKey: keys.privateKey,
  aead: selectAead(log),
  random: randomBytes,
  hosts: hostAddresses().map((address) => ({ address, port: socket.port })),
  resourceId: args.resource,
  now: clock(),
  log,
});

/** Bun reports a previous datagram's ICMP error on the next send, which then did not go out: retry. */
function send(data: Uint8Array, to: Endpoint): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      socket.send(data, to.port, to.address);
      return;
    } catch (err) {
      log.debug("udp send failed", { to: `${to.address}:${to.port}`, err: String(err) });
    }
  }
}

function ip(argv: string[]): void {
  try {
    execFileSync("ip", argv, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    log.warn("ip command failed", { argv: argv.join(" "), err: String((err as { stderr?: Buffer }).stderr ?? err).trim() });
  }
}

function openTun(ipv4: string, ipv6: string): void {
  if (tun) return;
  tun = TunDevice.open(args.tun!);
  ip(["addr", "add", `${ipv4}/32`, "dev", tun.name]);
  ip(["-6", "addr", "add", `${ipv6}/128`, "dev", tun.name, "nodad"]);
  ip(["link", "set", tun.name, "mtu", String(MTU), "up"]);
  reader = new TunReader(tun.fd, MTU, { onReadable: fromTun });
  fromTun(); // the worker wakes us only once we said we sleep (ring.sleep)
}

function fromTun(): void {
  const r = reader;
  if (!r || !core) return;
  for (;;) {
    r.ring.drain(256, (data, off, len) => {
      const n = core!.fromTun(data, off, len, netOut, clock());
      if (log.enabled("trace")) log.trace("from tun", { len, sent: n, to: n > 0 ? `${core!.sendTo.address}:${core!.sendTo.port}` : undefined });
      if (n > 0) send(netOutViews.of(n), core!.sendTo);
    });
    if (r.ring.sleep()) break;
  }
  pump();
}

function setRoutes(cidrs: string[]): void {
  if (!tun) return;
  const wanted = new Set(cidrs);
  for (const c of wanted) if (!installed.has(c)) ip([c.includes(":") ? "-6" : "-4", "route", "replace", c, "dev", tun.name]);
  for (const c of installed) if (!wanted.has(c)) ip([c.includes(":") ? "-6" : "-4", "route", "del", c, "dev", tun.name]);
  installed = wanted;
}

function onClientEvent(e: ClientEvent): void {
  switch (e.type) {
    case "interface":
      openTun(e.ipv4, e.ipv6);
      out({ event: "interface", tun: tun?.name, ipv4: e.ipv4, ipv6: e.ipv6 });
      return;
    case "routes":
      setRoutes(e.cidrs);
      out({ event: "routes", cidrs: e.cidrs });
      return;
    case "ice":
      if (e.event.kind === "state" || e.event.kind === "nominated") log.debug("ice", { event: JSON.stringify(e.event) });
      return;
    case "goodbye":
      log.info("the gateway said goodbye: connection closed", { gid: e.gatewayId });
      out({ event: "goodbye", gid: e.gatewayId });
      return;
    case "flow_failed":
      out({ event: "flow_failed", resource: e.resourceId, reason: e.reason });
      console.error(`cannot reach resource ${e.resourceId}: ${e.reason}`);
      void shutdown(1);
      return;
    case "flow_created":
      flowAt = clock();
      out({ event: e.type, gatewayId: e.gatewayId, resourceId: e.resourceId });
      return;
    case "connected":
    case "handshake_completed":
      // Milliseconds since flow_created: how long ICE (and then WireGuard) took.
      out({ event: e.type, ...e, type: undefined, ms: flowAt === undefined ? undefined : Math.round(clock() - flowAt) });
      return;
    default:
      out({ event: e.type, ...e, type: undefined });
  }
}

const portal: PortalSocket<ClientIngress, ClientEgress> = new PortalSocket({
  channel: clientChannel({ random: Math.random }),
  url: () => loginUrl({ apiUrl: args.portal!, token: args.token!, id: args.id ?? crypto.randomUUID(), name: args.name ?? hostname(), publicKey: encodeKey(keys.publicKey), mode: "client" }),
  userAgent: userAgent(readSystemFacts(), "headless-client", pkg.version),
  log: log,
  clock,
  onEvent(ev) {
    if (ev.kind === "message") {
      core!.handlePortal(ev.message, clock());
      pump();
    } else if (ev.kind === "joined") out({ event: "portal_joined", latencyMs: ev.latencyMs });
    else if (ev.kind === "fatal") {
      console.error(`portal: ${ev.message}`);
      void shutdown(ev.exitCode);
    }
  },
});

/** Carries out everything the core has to say, then sleeps until its next deadline. */
function pump(): void {
  const c = core!;
  for (let m = c.pollPortal(); m; m = c.pollPortal()) portal.send(m);
  for (let t = c.pollTransmit(); t; t = c.pollTransmit()) send(t.data, t.to);
  for (let e = c.pollEvent(); e; e = c.pollEvent()) onClientEvent(e);
  if (timer) clearTimeout(timer);
  timer = undefined;
  const at = c.pollTimeout();
  if (at !== undefined) {
    timer = setTimeout(() => {
      timer = undefined;
      c.handleTimeout(clock());
      pump();
    }, Math.max(0, Math.min(at - clock(), 60_000)));
  }
}

let stopping = false;
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  core?.close(clock());
  if (core) for (let t = core.pollTransmit(); t; t = core.pollTransmit()) send(t.data, t.to);
  portal.stop();
  if (timer) clearTimeout(timer);
  await reader?.stop();
  tun?.close();
  socket.close();
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

out({ event: "started", port: socket.port, publicKey: encodeKey(keys.publicKey) });
portal.start();
