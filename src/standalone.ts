// The standalone gateway, assembled: config → tunnel core → TUN + UDP + event loop → admin API.
// This is the composition root `glassgate up` runs; each part it wires lives in its own folder.
import { lookup } from "node:dns/promises";
import { mkdirSync } from "node:fs";
import { spawnSync } from "bun";
import { createAdminApp } from "../admin/app.ts";
import type { WireguardConfig } from "./config/index.ts";
import { selectAead } from "./crypto/select.ts";
import { encodeKey, publicKeyOf, randomBytes } from "./crypto/x25519.ts";
import { formatCidr } from "./ip/address.ts";
import { EventLoop } from "./io/event-loop.ts";
import { TunReader } from "./io/tun-reader.ts";
import { TunDevice } from "./io/tun.ts";
import { UdpSockets } from "./io/udp.ts";
import { renderMetrics } from "./telemetry/prometheus.ts";
import { connectionViews } from "./telemetry/view.ts";
import { Logger, type TargetLogger } from "./telemetry/log.ts";
import { Tunnel, type TunnelEvent } from "./tunnel/index.ts";
import { formatEndpoint, sessionField, type Endpoint } from "./wire/index.ts";

export interface StandaloneOptions {
  config: WireguardConfig;
  interfaceName: string;
  listenPort: number;
  admin: { hostname: string; port: number };
  adminToken: string | undefined;
  dataDir: string;
  keepDefaultBuffers: boolean;
  logger: Logger;
}

export interface RunningGateway {
  publicKey: string;
  udpPort: number;
  adminUrl: string;
  shutdown(reason: string): Promise<void>;
}

/** Monotonic milliseconds anchored to the Unix epoch: what the sans-IO cores take as `now`. */
export const clock = (): number => performance.timeOrigin + performance.now();

function ip(args: string[]): void {
  const r = spawnSync(["ip", ...args], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.toString().trim()}`);
}

async function resolveEndpoint(host: string, port: number): Promise<Endpoint> {
  const { address } = await lookup(host);
  return { address, port };
}

function logEvent(log: TargetLogger, e: TunnelEvent): void {
  switch (e.type) {
    case "handshake_completed":
      log.info("handshake completed", { cid: e.cid, session: sessionField(e.session), remote: formatEndpoint(e.remote), role: e.role, rtt_ms: e.rttMs });
      break;
    case "handshake_failed":
      log.warn("handshake gave up", { cid: e.cid, attempts: e.attempts });
      break;
    case "endpoint_changed":
      log.info("endpoint changed", { cid: e.cid, remote: formatEndpoint(e.to), from: e.from ? formatEndpoint(e.from) : undefined });
      break;
    case "keys_zeroed":
      log.info("session keys erased after inactivity", { cid: e.cid });
      break;
    case "handshake_initiated":
      if (log.enabled("debug")) log.debug("handshake initiated", { cid: e.cid, session: sessionField(e.session), attempt: e.attempt, remote: formatEndpoint(e.to) });
      break;
    case "session_confirmed":
      if (log.enabled("debug")) log.debug("session confirmed", { cid: e.cid, session: sessionField(e.session) });
      break;
    default:
      break;
  }
}

export async function runStandalone(opts: StandaloneOptions): Promise<RunningGateway> {
  const log = opts.logger.target("gateway");
  const cfg = opts.config;
  mkdirSync(opts.dataDir, { recursive: true });

  const aead = selectAead(opts.logger.target("crypto"));
  const tunnel = new Tunnel({ aead, privateKey: cfg.interface.privateKey, random: randomBytes, mtu: cfg.interface.mtu });
  for (const p of cfg.peers) {
    const endpoint = p.endpoint ? await resolveEndpoint(p.endpoint.host, p.endpoint.port) : undefined;
    const conn = tunnel.upsertPeer({ publicKey: p.publicKey, presharedKey: p.presharedKey, allowedIPs: p.allowedIPs, endpoint, persistentKeepalive: p.persistentKeepalive });
    log.info("peer configured", { cid: conn.cid, public_key: conn.publicKey, allowed_ips: p.allowedIPs.map(formatCidr).join(","), remote: endpoint ? formatEndpoint(endpoint) : undefined });
  }

  const tun = TunDevice.open(opts.interfaceName);
  try {
    for (const a of cfg.interface.addresses) ip(["addr", "add", formatCidr(a), "dev", tun.name]);
    ip(["link", "set", "dev", tun.name, "mtu", String(cfg.interface.mtu), "up"]);
    for (const p of cfg.peers) {
      for (const c of p.allowedIPs) {
        // A default route through the tunnel would take over the host's own traffic: leave it out.
        if (c.prefix === 0) {
          log.warn("not routing a default route to a peer", { public_key: encodeKey(p.publicKey), allowed_ips: formatCidr(c) });
          continue;
        }
        ip(["route", "replace", formatCidr(c), "dev", tun.name]);
      }
    }
  } catch (err) {
    tun.close();
    throw new Error(`configuring ${tun.name}`, { cause: err });
  }

  const loop = new EventLoop({
    tunnel,
    tun,
    clock,
    onEvent: (e) => logEvent(opts.logger.target("tunnel"), e),
    onBatchErrors: (errors, turn) => opts.logger.target("io").warn("per-packet errors in one event-loop turn", { count: errors.length, turn, err: errors[0] }),
  });
  const udp = await UdpSockets.open({
    port: opts.listenPort,
    onDatagram: loop.onDatagram,
    onError: (err) => opts.logger.target("io").error("UDP socket error", { err }),
    keepDefaultBuffers: opts.keepDefaultBuffers,
  });
  const reader = new TunReader(tun.fd, cfg.interface.mtu, loop.wake);
  loop.attach(udp, reader);

  const app = createAdminApp({
    token: opts.adminToken,
    query: {
      connections: () => connectionViews(tunnel, clock()),
      metrics: () => renderMetrics({ tunnel, loop, now: clock() }),
    },
  });
  const server = Bun.serve({ hostname: opts.admin.hostname, port: opts.admin.port, fetch: app.fetch });
  const adminUrl = `http://${opts.admin.hostname.includes(":") ? `[${opts.admin.hostname}]` : opts.admin.hostname}:${server.port}`;
  const publicKey = encodeKey(publicKeyOf(cfg.interface.privateKey));
  log.info("gateway up", {
    interface: tun.name,
    listen_port: udp.port,
    public_key: publicKey,
    peers: cfg.peers.length,
    admin: adminUrl,
    aead: aead.name,
    udp_recv_buffer: udp.buffers.recv,
    udp_send_buffer: udp.buffers.send,
  });
  if (!opts.adminToken) log.warn("GLASSGATE_ADMIN_TOKEN is not set: the admin API answers only /healthz");

  let down: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> =>
    (down ??= (async () => {
      log.info("shutting down", { reason });
      const told = tunnel.goodbye(clock());
      loop.stop(); // flushes the goodbyes, then accepts nothing more
      await Bun.sleep(50); // let the sends complete before the sockets close
      tunnel.zeroize();
      udp.close();
      await reader.stop();
      tun.close();
      server.stop(true);
      log.info("gateway down", { goodbyes_sent: told });
    })());

  return { publicKey, udpPort: udp.port, adminUrl, shutdown };
}
