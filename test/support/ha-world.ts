// An HA pair as keepalived would run it, built from namespaces this test run creates:
//
//   client (wireguard-go) ─┐
//   gw-a (glassgate) ──────┼── br (a Linux bridge in its own namespace: one L2 segment, 10.77.0.0/24)
//   gw-b (glassgate) ──────┘
//
// gw-a is 10.77.0.11 and gw-b 10.77.0.12 (their own addresses); the floating address 10.77.0.100
// is on whichever is master. Both run `glassgate up` from the same config file content (one
// WireGuard private key, one tunnel address) with their own --data. The client's Endpoint is the
// floating address. `takeOver` does what keepalived does on a master change: the address moves, and
// the segment learns the new MAC. No `src` route: the gateway's own address stays the route's
// preferred source, and glassgate answers from the floating address because datagrams arrive there.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, type Subprocess } from "bun";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import { Netns, sh, waitFor } from "./netns.ts";
import { watch, type Watched } from "./process-lines.ts";

const ROOT = join(import.meta.dir, "..", "..");
export const ADMIN_TOKEN = "ha-test-token-0123456789";
export const SEGMENT = "10.77.0";
export const FLOATING = `${SEGMENT}.100`;
export const WG_PORT = 52625;
export const CLIENT_PORT = 51820;
/** The tunnel: both gateways are .1 (one config), clients from .2. */
export const TUNNEL = "10.98.0";
export const GW_TUNNEL_IP = `${TUNNEL}.1`;
/** The interface name on the segment, in every namespace (names are per namespace). */
export const UPLINK = "seg0";

export type Side = "a" | "b";

export interface HaClient {
  ns: Netns;
  wgIf: string;
  privateKey: Uint8Array;
  publicKey: string;
  tunnelIp: string;
  segmentIp: string;
}

export interface HaGateway {
  side: Side;
  ns: Netns;
  ownIp: string;
  dataDir: string;
  proc?: Subprocess<"ignore", "pipe", "pipe">;
  log?: Watched;
}

export class HaWorld {
  readonly dir = mkdtempSync(join(tmpdir(), "glassgate-ha-"));
  readonly br: Netns;
  readonly gws: Record<Side, HaGateway>;
  readonly clients: HaClient[] = [];
  readonly gwKey = generatePrivateKey();
  #clientCount = 0;
  #ports = 0;

  constructor(readonly tag: string) {
    this.br = new Netns(`gg-habr-${tag}`);
    this.br.exec(["ip", "link", "add", "br0", "type", "bridge"]);
    this.br.exec(["ip", "link", "set", "br0", "up"]);
    const gw = (side: Side, host: number): HaGateway => {
      const ns = new Netns(`gg-ha${side}-${tag}`);
      this.#plug(ns, `${SEGMENT}.${host}/24`);
      ns.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      return { side, ns, ownIp: `${SEGMENT}.${host}`, dataDir: join(this.dir, `data-${side}`) };
    };
    this.gws = { a: gw("a", 11), b: gw("b", 12) };
  }

  get gwPublicKey(): string {
    return encodeKey(publicKeyOf(this.gwKey));
  }

  /** A veth from `ns` (named UPLINK there, with `addr`) to a port of the bridge. */
  #plug(ns: Netns, addr: string): void {
    const port = `p${this.#ports++}${this.tag}`;
    const tmp = `t${this.#ports}${this.tag}`;
    sh(["ip", "link", "add", tmp, "type", "veth", "peer", "name", port]);
    sh(["ip", "link", "set", port, "netns", this.br.name]);
    sh(["ip", "link", "set", tmp, "netns", ns.name, "name", UPLINK]);
    this.br.exec(["ip", "link", "set", port, "master", "br0", "up"]);
    ns.exec(["ip", "addr", "add", addr, "dev", UPLINK]);
    ns.exec(["ip", "link", "set", UPLINK, "up"]);
  }

  /**
   * A wireguard-go client on the segment, configured like a stock client: the gateway's key, the
   * floating address as its Endpoint, a PersistentKeepalive, the gateway's tunnel address routed.
   */
  async addClient(persistentKeepalive = 25): Promise<HaClient> {
    const i = this.#clientCount++;
    const ns = new Netns(`gg-hac${i}-${this.tag}`);
    const segmentIp = `${SEGMENT}.${2 + i}`;
    this.#plug(ns, `${segmentIp}/24`);
    // wireguard-go's UAPI socket path is not per namespace: the name must be unique machine-wide.
    const wgIf = `wgh${i}${this.tag}`;
    ns.start(["wireguard-go", "-f", wgIf], { LOG_LEVEL: "error" });
    await waitFor(`${wgIf} to exist`, () => ns.exec(["ip", "link", "show", wgIf], { allowFail: true }).includes(wgIf));
    const privateKey = generatePrivateKey();
    const keyFile = join(this.dir, `client${i}.key`);
    writeFileSync(keyFile, encodeKey(privateKey), { mode: 0o600 });
    const tunnelIp = `${TUNNEL}.${2 + i}`;
    ns.exec(["wg", "set", wgIf, "private-key", keyFile, "listen-port", String(CLIENT_PORT), "peer", this.gwPublicKey,
      "endpoint", `${FLOATING}:${WG_PORT}`, "allowed-ips", `${TUNNEL}.0/24`, "persistent-keepalive", String(persistentKeepalive)]);
    ns.exec(["ip", "addr", "add", `${tunnelIp}/24`, "dev", wgIf]);
    ns.exec(["ip", "link", "set", wgIf, "mtu", "1420", "up"]);
    const c = { ns, wgIf, privateKey, publicKey: encodeKey(publicKeyOf(privateKey)), tunnelIp, segmentIp };
    this.clients.push(c);
    return c;
  }

  /** One config file, shared by both gateways as a pair shares it (same key, same tunnel address). */
  writeConfig(filePeers: HaClient[]): string {
    const lines = ["[Interface]", `PrivateKey = ${encodeKey(this.gwKey)}`, `Address = ${GW_TUNNEL_IP}/24`, `ListenPort = ${WG_PORT}`, ""];
    for (const c of filePeers) lines.push("[Peer]", `PublicKey = ${c.publicKey}`, `AllowedIPs = ${c.tunnelIp}/32`, "");
    const file = join(this.dir, "gw.conf");
    writeFileSync(file, lines.join("\n"), { mode: 0o600 });
    return file;
  }

  /** Starts `glassgate up` in the gateway's namespace and waits for "gateway up". */
  async start(side: Side, config: string, env: Record<string, string> = {}): Promise<void> {
    const g = this.gws[side];
    const p = spawn(
      ["ip", "netns", "exec", g.ns.name, "bun", "run", join(ROOT, "src/cli.ts"), "up", "--config", config,
        "--interface", `gg${side}${this.tag}`, "--admin", "127.0.0.1:8080", "--data", g.dataDir],
      { cwd: ROOT, env: { ...process.env, GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN, GLASSGATE_LOG: "info", ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    g.proc = p;
    g.log = watch(p, `gw-${side}`, "stderr");
    await g.log.next((l) => l.msg === "gateway up", "gateway up", 30_000);
  }

  /**
   * What keepalived does when `side` becomes master: the floating address on its uplink (as a
   * secondary address: the gateway's own stays the route's preferred source), and the segment told
   * the new MAC (keepalived sends gratuitous ARP; here the client's neighbour cache is flushed instead).
   */
  takeOver(side: Side): void {
    const other = this.gws[side === "a" ? "b" : "a"];
    other.ns.exec(["ip", "addr", "del", `${FLOATING}/24`, "dev", UPLINK], { allowFail: true });
    const g = this.gws[side];
    g.ns.exec(["ip", "addr", "add", `${FLOATING}/24`, "dev", UPLINK]);
    for (const c of this.clients) c.ns.exec(["ip", "neigh", "flush", "dev", UPLINK]);
  }

  /**
   * Makes the floating address the route's preferred source on `side` (keepalived's
   * `virtual_routes … src`): for a conversation the gateway starts with a client it never heard
   * from, where there is no arrival address to answer from.
   */
  preferFloating(side: Side): void {
    this.gws[side].ns.exec(["ip", "route", "replace", `${SEGMENT}.0/24`, "dev", UPLINK, "src", FLOATING]);
  }

  /** The gateway as a crash leaves it: SIGKILL, no goodbye, nothing flushed. */
  async crash(side: Side): Promise<void> {
    const p = this.gws[side].proc;
    if (!p || p.exitCode !== null) return;
    p.kill("SIGKILL");
    await p.exited;
  }

  /** A request to a gateway's admin API (it listens on its namespace's loopback), bearer token. */
  request(side: Side, method: string, path: string, body?: unknown): { status: number; body: string } {
    const init = { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) };
    const script = `const r = await fetch("http://127.0.0.1:8080${path}", ${JSON.stringify(init)});` +
      `process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() }));`;
    return JSON.parse(this.gws[side].ns.exec(["bun", "-e", script]));
  }

  connections(side: Side): { public_key: string; endpoint: string | null; handshakes: { initiated: number; completed: number } }[] {
    const r = this.request(side, "GET", "/api/connections");
    if (r.status !== 200) throw new Error(`gw-${side} /api/connections: ${r.status} ${r.body}`);
    return JSON.parse(r.body).connections;
  }

  /** The source address `side`'s kernel prefers for a packet to `to` (its route's `src`). */
  routeSource(side: Side, to: string): string {
    return / src (\S+)/.exec(this.gws[side].ns.exec(["ip", "-o", "route", "get", to]))?.[1] ?? "";
  }

  /** The endpoint the client's wireguard-go has for the gateway now (it roams to where replies come from). */
  clientEndpoint(c: HaClient): string {
    return c.ns.exec(["wg", "show", c.wgIf, "endpoints"]).trim().split(/\s+/)[1] ?? "";
  }

  async destroy(): Promise<void> {
    for (const g of Object.values(this.gws)) {
      const p = g.proc;
      if (p && p.exitCode === null) {
        p.kill("SIGTERM");
        if ((await Promise.race([p.exited, Bun.sleep(5000).then(() => null)])) === null) p.kill("SIGKILL");
      }
    }
    for (const c of this.clients) await c.ns.destroy();
    for (const g of Object.values(this.gws)) await g.ns.destroy();
    await this.br.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One echo reply as `ping -D` prints it: when it arrived (s, host clock) and its sequence number. */
export interface Reply {
  at: number;
  seq: number;
}

/** `[1764432000.123456] 64 bytes from 10.98.0.1: icmp_seq=12 ttl=64 time=0.41 ms` → {at, seq}. */
export function parsePingLine(line: string): Reply | undefined {
  const m = /^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)/.exec(line);
  return m ? { at: Number(m[1]), seq: Number(m[2]) } : undefined;
}

/**
 * The outage as the client saw it: the last reply at or before `since` and the first after it
 * (seconds between them, and how many pings went unanswered in between).
 */
export function outage(replies: Reply[], since: number): { gapS: number; lost: number; before: Reply; after: Reply } | undefined {
  const before = replies.filter((r) => r.at <= since).at(-1);
  const after = replies.find((r) => r.at > since);
  if (!before || !after) return undefined;
  return { gapS: after.at - before.at, lost: after.seq - before.seq - 1, before, after };
}
