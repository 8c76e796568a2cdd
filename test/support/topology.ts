// The standalone-gateway test network, built from namespaces this test run creates:
//
//   client1..N (wireguard-go) ──veth── gw (glassgate) ──veth── lan (a plain host)
//
// Underlay: client i ↔ gw on 10.201.<k>.<8i>/29 (room to roam to a second address); gw ↔ lan on 10.202.<k>.0/24. Tunnel 10.99.<k>.0/24
// with the gateway at .1 and client i at .(i+1). Everything is removed by destroy().
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, type Subprocess } from "bun";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import { Netns, sh, waitFor } from "./netns.ts";

const ROOT = join(import.meta.dir, "..", "..");
export const ADMIN_TOKEN = "test-token-0123456789";
/** wireguard-go's listen port in every client namespace (each namespace has its own ports). */
export const CLIENT_PORT = 51820;

export interface Client {
  index: number;
  ns: Netns;
  wgIf: string;
  privateKey: Uint8Array;
  publicKey: string;
  tunnelIp: string;
  underlayIp: string;
  wg: Subprocess;
}

export class Topology {
  readonly dir = mkdtempSync(join(tmpdir(), "glassgate-topo-"));
  readonly gw: Netns;
  readonly lan: Netns;
  readonly clients: Client[] = [];
  readonly gwKey = generatePrivateKey();
  readonly net: number;
  gateway: Subprocess<"ignore", "pipe", "pipe"> | undefined;
  gatewayLog = "";
  readonly #logs: Promise<void>[] = [];

  constructor(readonly tag: string, clientCount: number) {
    this.net = Number(tag) % 200;
    this.gw = new Netns(`gg-gw-${tag}`);
    this.lan = new Netns(`gg-lan-${tag}`);
    this.gw.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    sh(["ip", "link", "add", `gl${tag}`, "type", "veth", "peer", "name", `lg${tag}`]);
    sh(["ip", "link", "set", `gl${tag}`, "netns", this.gw.name]);
    sh(["ip", "link", "set", `lg${tag}`, "netns", this.lan.name]);
    this.gw.exec(["ip", "addr", "add", `10.202.${this.net}.1/24`, "dev", `gl${tag}`]);
    this.gw.exec(["ip", "link", "set", `gl${tag}`, "up"]);
    this.lan.exec(["ip", "addr", "add", `10.202.${this.net}.2/24`, "dev", `lg${tag}`]);
    this.lan.exec(["ip", "link", "set", `lg${tag}`, "up"]);
    this.lan.exec(["ip", "route", "add", "default", "via", `10.202.${this.net}.1`]);
    for (let i = 0; i < clientCount; i++) this.#addClient(i);
  }

  get lanIp(): string {
    return `10.202.${this.net}.2`;
  }

  get gwTunnelIp(): string {
    return `10.99.${this.net}.1`;
  }

  gwUnderlayFor(c: Client): string {
    return `10.201.${this.net}.${c.index * 8 + 1}`;
  }

  #addClient(i: number): void {
    const ns = new Netns(`gg-c${i}-${this.tag}`);
    const cv = `c${i}g${this.tag}`;
    const gv = `g${i}c${this.tag}`;
    sh(["ip", "link", "add", cv, "type", "veth", "peer", "name", gv]);
    sh(["ip", "link", "set", cv, "netns", ns.name]);
    sh(["ip", "link", "set", gv, "netns", this.gw.name]);
    const gwSide = `10.201.${this.net}.${i * 8 + 1}`;
    const clientSide = `10.201.${this.net}.${i * 8 + 2}`;
    this.gw.exec(["ip", "addr", "add", `${gwSide}/29`, "dev", gv]);
    this.gw.exec(["ip", "link", "set", gv, "up"]);
    ns.exec(["ip", "addr", "add", `${clientSide}/29`, "dev", cv]);
    ns.exec(["ip", "link", "set", cv, "up"]);
    const privateKey = generatePrivateKey();
    // wireguard-go's UAPI socket path is not per namespace: the name must be unique machine-wide.
    const wgIf = `wgc${i}${this.tag}`;
    const wg = ns.start(["wireguard-go", "-f", wgIf], { LOG_LEVEL: "error" });
    this.clients.push({
      index: i,
      ns,
      wgIf,
      privateKey,
      publicKey: encodeKey(publicKeyOf(privateKey)),
      tunnelIp: `10.99.${this.net}.${i + 2}`,
      underlayIp: clientSide,
      wg,
    });
  }

  /** Writes the gateway's wg-quick config: the first `fileClients` clients as peers (endpoints learnt on handshake). */
  writeGatewayConfig(fileClients = this.clients.length, withEndpoints: number[] = [], extra: { sections?: string; peerLines?: Record<number, string[]>; interfaceLines?: string[] } = {}): string {
    const lines = ["[Interface]", `PrivateKey = ${encodeKey(this.gwKey)}`, `Address = ${this.gwTunnelIp}/24`, "ListenPort = 52625", ...(extra.interfaceLines ?? []), ""];
    for (const c of this.clients.slice(0, fileClients)) {
      lines.push("[Peer]", `PublicKey = ${c.publicKey}`, `AllowedIPs = ${c.tunnelIp}/32`);
      if (withEndpoints.includes(c.index)) lines.push(`Endpoint = ${c.underlayIp}:${CLIENT_PORT}`);
      lines.push(...(extra.peerLines?.[c.index] ?? []));
      lines.push("");
    }
    if (extra.sections) lines.push(extra.sections);
    const file = join(this.dir, "gw.conf");
    writeFileSync(file, lines.join("\n"), { mode: 0o600 }); // holds the private key: the gateway warns about anything looser
    return file;
  }

  /** Configures client i's wireguard-go like a stock client: gateway as its only peer, LAN routed. */
  /** With `endpoint: false` the client knows no address for the gateway: only the gateway can start the tunnel. */
  async configureClient(c: Client, persistentKeepalive = 0, opts: { endpoint?: boolean } = {}): Promise<void> {
    await waitFor(`${c.wgIf} to exist`, () => c.ns.exec(["ip", "link", "show", c.wgIf], { allowFail: true }).includes(c.wgIf));
    const keyFile = join(this.dir, `client${c.index}.key`);
    writeFileSync(keyFile, encodeKey(c.privateKey));
    const args = ["wg", "set", c.wgIf, "private-key", keyFile, "listen-port", String(CLIENT_PORT), "peer", encodeKey(publicKeyOf(this.gwKey)),
      ...(opts.endpoint === false ? [] : ["endpoint", `${this.gwUnderlayFor(c)}:52625`]), "allowed-ips", `10.99.${this.net}.0/24,10.202.${this.net}.0/24`];
    if (persistentKeepalive) args.push("persistent-keepalive", String(persistentKeepalive));
    c.ns.exec(args);
    c.ns.exec(["ip", "addr", "add", `${c.tunnelIp}/24`, "dev", c.wgIf]);
    c.ns.exec(["ip", "link", "set", c.wgIf, "mtu", "1420", "up"]);
    c.ns.exec(["ip", "route", "add", `10.202.${this.net}.0/24`, "dev", c.wgIf]);
  }

  /**
   * Configures client `c` from a wg-quick file a user would import (e.g. one the admin UI made):
   * `wg-quick strip` gives wg its part; Address and the routes come from the file like wg-quick does.
   */
  async configureClientFromFile(c: Client, text: string): Promise<void> {
    await waitFor(`${c.wgIf} to exist`, () => c.ns.exec(["ip", "link", "show", c.wgIf], { allowFail: true }).includes(c.wgIf));
    const file = join(this.dir, `client${c.index}.conf`);
    writeFileSync(file, text, { mode: 0o600 });
    const stripped = join(this.dir, `client${c.index}.wg`);
    writeFileSync(stripped, sh(["wg-quick", "strip", file]));
    c.ns.exec(["wg", "setconf", c.wgIf, stripped]);
    const address = /^Address\s*=\s*(.+)$/m.exec(text)![1]!.trim();
    c.ns.exec(["ip", "addr", "add", address, "dev", c.wgIf]);
    c.ns.exec(["ip", "link", "set", c.wgIf, "mtu", "1420", "up"]);
    for (const cidr of /^AllowedIPs\s*=\s*(.+)$/m.exec(text)![1]!.split(",").map((x) => x.trim())) {
      c.ns.exec(["ip", "route", "replace", cidr, "dev", c.wgIf]);
    }
  }

  /** Starts `glassgate up` inside the gateway namespace and waits for its admin API. */
  async startGateway(
    extraEnv: Record<string, string> = {},
    fileClients = this.clients.length,
    opts: { withEndpoints?: number[]; sections?: string; peerLines?: Record<number, string[]>; interfaceLines?: string[]; readyTimeoutMs?: number } = {},
  ): Promise<void> {
    const config = this.writeGatewayConfig(fileClients, opts.withEndpoints, opts);
    const p = spawn(
      ["ip", "netns", "exec", this.gw.name, "bun", "run", join(ROOT, "src/cli.ts"), "up", "--config", config,
        "--interface", `ggt${this.tag}`, "--admin", "127.0.0.1:8080", "--data", join(this.dir, "data")],
      { cwd: ROOT, env: { ...process.env, GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN, GLASSGATE_LOG: "info", ...extraEnv }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    this.gateway = p;
    this.#logs.push((async () => {
      for await (const chunk of p.stderr) this.gatewayLog += new TextDecoder().decode(chunk);
    })());
    await waitFor("glassgate to be up", () => {
      if (p.exitCode !== null) throw new Error(`glassgate exited ${p.exitCode}: ${this.gatewayLog}`);
      return this.gatewayLog.includes('"msg":"gateway up"');
    }, opts.readyTimeoutMs ?? 20_000);
  }

  /** SIGTERM, and the exit code and how long it took. */
  async stopGateway(): Promise<{ code: number | null; ms: number }> {
    const p = this.gateway;
    if (!p || p.exitCode !== null) return { code: p?.exitCode ?? null, ms: 0 };
    const t0 = Date.now();
    p.kill("SIGTERM");
    const code = await Promise.race([p.exited, Bun.sleep(5000).then(() => null)]);
    if (code === null) p.kill("SIGKILL");
    return { code, ms: Date.now() - t0 };
  }

  /** GET on the gateway's admin API (it listens on the gateway namespace's loopback). */
  api(path: string, token: string | null = ADMIN_TOKEN): { status: number; body: string } {
    const script = `const r = await fetch("http://127.0.0.1:8080${path}", { headers: ${JSON.stringify(token ? { authorization: `Bearer ${token}` } : {})} });` +
      `process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() }));`;
    return JSON.parse(this.gw.exec(["bun", "-e", script]));
  }

  /** Any method on the admin API with a JSON body (bearer token). */
  request(method: string, path: string, body?: unknown): { status: number; body: string } {
    const init = { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) };
    const script = `const r = await fetch("http://127.0.0.1:8080${path}", ${JSON.stringify(init)});` +
      `process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() }));`;
    return JSON.parse(this.gw.exec(["bun", "-e", script]));
  }

  connections(): { cid: number; public_key: string; endpoint: string | null; sessions: string[]; rx_bytes: number; tx_bytes: number; handshakes: { completed: number } }[] {
    const r = this.api("/api/connections");
    if (r.status !== 200) throw new Error(`/api/connections: ${r.status} ${r.body}`);
    return JSON.parse(r.body).connections;
  }

  metric(name: string, labels = ""): number {
    const body = this.api("/metrics").body;
    const line = body.split("\n").find((l) => l.startsWith(`${name}${labels} `));
    return line ? Number(line.split(" ")[1]) : 0;
  }

  async destroy(): Promise<void> {
    await this.stopGateway();
    for (const c of this.clients) await c.ns.destroy();
    await this.gw.destroy();
    await this.lan.destroy();
    await Promise.allSettled(this.#logs);
  }
}
