// `glassgate up --portal`: the standalone composition (run.ts) with no local peers, driven by the
// portal instead. The parts are run.ts's; this adds the portal socket (io/portal-socket.ts over the
// sans-IO channel), the session that maps messages onto the node (portal-session.ts), and what
// `init` configures: the TUN's addresses and routes, and the DNS service on 53535.
//
// Fatal portal errors (token refused or expired, join rejected, 15 minutes without a join) end the
// gateway like a fatal error does — goodbye to every client — and exit with the channel's code.
import { hostname, networkInterfaces } from "node:os";
import pkg from "../../package.json" with { type: "json" };
import { encodeKey, publicKeyOf, randomBytes } from "../crypto/x25519.ts";
import { DEFAULT_LISTEN_PORT, DEFAULT_MTU, type WireguardConfig } from "../config/index.ts";
import { parseCidr, parseIp } from "../ip/address.ts";
import { PortalSocket } from "../io/portal-socket.ts";
import { runIp } from "../io/routes.ts";
import { readSystemFacts } from "../io/system-facts.ts";
import { gatewayChannel, loginUrl, redactedUrl, userAgent, type ChannelTimers, type GatewayEgress, type GatewayIngress, type PortalSettings } from "../portal/index.ts";
import type { Endpoint } from "../wire/index.ts";
import { PortalSession, type PortalInterface } from "./portal-session.ts";
import { addTunAddresses, clock, runStandalone, type RunningGateway, type StandaloneOptions } from "./run.ts";

/** Firezone's client ranges: every client address is in these, routed into the TUN (connlib's IPV4_TUNNEL / IPV6_TUNNEL). */
export const CLIENT_RANGE_V4 = "100.64.0.0/11";
export const CLIENT_RANGE_V6 = "fd00:2021:1111::/107";
/** Firezone clients ask the gateway's DNS here (connlib `gateway` DNS resource port). */
export const PORTAL_DNS_PORT = 53535;

export interface PortalOptions extends Omit<StandaloneOptions, "config" | "portal"> {
  settings: PortalSettings;
  /** Shorter channel timers for tests on a real socket; Firezone's otherwise. */
  channelTimers?: Partial<ChannelTimers>;
  /** The DNS port clients use (53535); tests may move it. */
  dnsPort?: number;
}

export interface RunningPortalGateway extends RunningGateway {
  /** Settles when the portal connection failed for good: the process exits with `exitCode`. */
  portalFailed: Promise<{ exitCode: number; message: string }>;
  session: PortalSession;
}

/** Portal mode has no config file: a fresh key each start (as Firezone's gateway), no peers, no resources. */
export function portalConfig(listenPort = DEFAULT_LISTEN_PORT): WireguardConfig {
  return { file: "(portal)", interface: { privateKey: randomBytes(32), listenPort, addresses: [], mtu: DEFAULT_MTU, dns: [] }, peers: [], resources: [] };
}

export async function runPortal(opts: PortalOptions): Promise<RunningPortalGateway> {
  // Every portal line names this gateway (gid) once it is known (the store holds it).
  let log = opts.logger.target("portal");
  const config = portalConfig(opts.listenPort);
  let session: PortalSession | undefined;
  let flush = (): void => undefined;
  const gw = await runStandalone({
    ...opts,
    config,
    portal: {
      onIceEvent: (e, now) => {
        if (e.type !== "local_candidates" && e.type !== "invalidated_candidates") return;
        session?.handleNodeEvent(e, now);
        flush();
      },
      clientId: (cid) => session?.clientIdOf(cid),
      onExpired: (cid, rid, now) => {
        session?.onExpired(cid, rid, now);
        flush();
      },
      admin: {
        portal: () => {
          const s = channel.stats();
          const iface = session?.interface;
          return {
            url: redactedUrl(opts.settings.apiUrl),
            state: s.state,
            connected_since: s.joinedAt === null ? null : new Date(s.joinedAt).toISOString(),
            last_message_at: s.lastMessageAt === null ? null : new Date(s.lastMessageAt).toISOString(),
            reconnects: s.reconnects,
            join_latency_ms: s.joinLatencyMs,
            malformed: s.malformed,
            dropped: s.dropped,
            ipv4: iface?.ipv4 ?? null,
            ipv6: iface?.ipv6 ?? null,
            clients: session?.clients().length ?? 0,
          };
        },
        connectionPortal: (cid) => {
          const c = session?.client(cid);
          if (!c) return undefined;
          return { client_id: c.client_id, name: c.name, ipv4: c.ipv4, ipv6: c.ipv6, resources: c.resources, timeline: session!.timeline(cid).map((t) => ({ ...t, at: new Date(t.at).toISOString() })) };
        },
      },
    },
  });
  const { parts } = gw;
  log = log.with({ gid: parts.gid });
  const hosts = hostCandidates(gw.udpPort, parts.tunName);
  parts.node.setHostAddresses(hosts, clock());
  log.info("host candidates", { gid: parts.gid, hosts: hosts.map((h) => `${h.address}:${h.port}`).join(",") || undefined });
  session = new PortalSession({ node: parts.node, policy: parts.core.policy, log, gid: parts.gid, random: randomBytes });
  const s = session;

  const publicKey = encodeKey(publicKeyOf(config.interface.privateKey));
  const id = opts.settings.id ?? parts.gid;
  const name = opts.settings.name ?? hostname();
  const channel = gatewayChannel({ random: Math.random, timers: opts.channelTimers });
  let reportFatal!: (f: { exitCode: number; message: string }) => void;
  const portalFailed = new Promise<{ exitCode: number; message: string }>((resolve) => (reportFatal = resolve));
  let current: PortalInterface | undefined;

  const socket: PortalSocket<GatewayIngress, GatewayEgress> = new PortalSocket({
    channel,
    url: () => loginUrl({ apiUrl: opts.settings.apiUrl, token: opts.settings.token, id, name, publicKey }),
    userAgent: userAgent(readSystemFacts(), "gateway", pkg.version),
    log,
    clock,
    onEvent(ev) {
      if (ev.kind === "message") {
        try {
          s.handle(ev.message, clock());
        } catch (err) {
          // A message that validated but could not be applied (say, an authorization whose
          // resource the policy refuses) is this message's failure, not the gateway's.
          log.error("portal message could not be applied", { gid: parts.gid, event: ev.message.event, err });
        }
        const iface = s.pollInterfaceChange();
        if (iface) void applyInterface(iface);
        flush();
      } else if (ev.kind === "fatal") {
        process.stderr.write(`glassgate: portal: ${ev.message}\n`);
        reportFatal({ exitCode: ev.exitCode, message: ev.message });
      }
    },
  });
  flush = () => {
    for (let m = s.pollSend(); m; m = s.pollSend()) socket.send(m);
    parts.wake();
  };

  /** The TUN takes the portal's addresses; the client ranges route into it; DNS listens on them. */
  const applyInterface = async (iface: PortalInterface): Promise<void> => {
    const glog = opts.logger.target("gateway");
    try {
      const was = current;
      current = iface;
      if (was) {
        for (const a of [`${was.ipv4}/32`, `${was.ipv6}/128`]) {
          try {
            runIp(["addr", "del", a, "dev", parts.tunName]);
          } catch {
            // already gone (never added, or removed by hand): the new one matters
          }
        }
      }
      addTunAddresses(parts.tunName, [parseCidr(`${iface.ipv4}/32`), parseCidr(`${iface.ipv6}/128`)], glog, "the portal's interface addresses");
      runIp(["route", "replace", CLIENT_RANGE_V4, "dev", parts.tunName]);
      runIp(["-6", "route", "replace", CLIENT_RANGE_V6, "dev", parts.tunName]);
      glog.info("TUN configured from the portal", { gid: parts.gid, interface: parts.tunName, ipv4: iface.ipv4, ipv6: iface.ipv6, routes: `${CLIENT_RANGE_V4},${CLIENT_RANGE_V6}` });
      const upstream = iface.upstream_dns[0]?.address.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
      await parts.startDns([parseIp(iface.ipv4)!, parseIp(iface.ipv6)!], opts.dnsPort ?? PORTAL_DNS_PORT, upstream);
    } catch (err) {
      glog.error("applying the portal's interface failed", { gid: parts.gid, interface: parts.tunName, err });
    }
  };

  log.info("connecting to the portal", { gid: parts.gid, url: redactedUrl(opts.settings.apiUrl), portal_id: id, name, public_key: publicKey });
  socket.start();

  const shutdown = async (reason: string) => {
    socket.stop();
    await gw.shutdown(reason);
  };
  return { ...gw, shutdown, portalFailed, session: s };
}

/**
 * The host's own addresses (not loopback, not link-local, not the TUN) with the WireGuard port: the
 * host candidates every client gets. Read once at start (a host that renumbers needs a restart).
 */
export function hostCandidates(port: number, tunName: string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (name === tunName) continue;
    for (const a of addrs ?? []) {
      if (a.internal || (a.family === "IPv6" && a.address.toLowerCase().startsWith("fe80"))) continue;
      out.push({ address: a.address, port });
    }
  }
  return out;
}
