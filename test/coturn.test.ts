// The TURN client against a real, independent relay: Debian's coturn, started by this test on
// 127.0.0.1 with its own config in a temp dir and private ports, ended by its PID. A thin IO
// shell (one Bun UDP socket) drives the sans-IO client; a second socket plays the peer. Covers
// a static user (long-term credentials) and coturn's TURN REST mode (`use-auth-secret`, how
// Firezone's portal hands out relay credentials): allocate, refresh, permission, channel bind,
// data both ways, stale nonces, wrong credentials, and an allocation that expires.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, type Subprocess } from "bun";
import { parseStun, StunClass, StunMessage, StunMethod, StunWriter } from "../src/ice/stun.ts";
import { CHANNEL_DATA_HEADER, channelDataLength, TurnClient, type TurnClientOptions, type TurnEvent } from "../src/ice/turn-client.ts";
import { turnRestCredentials } from "../src/ice/turn-credentials.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../src/telemetry/log.ts";
import type { Endpoint } from "../src/wire/index.ts";
import { skipReason, waitFor } from "./support/netns.ts";

const skip = skipReason(["turnserver"]);
if (skip) console.warn(`skipping coturn: ${skip}`);

const HOST = "127.0.0.1";
const until = (fn: () => boolean, ms: number, what: string) => waitFor(what, fn, ms);
const REALM = "glassgate.test";
const SECRET = "rest-secret-for-tests";

/** One coturn process with its own directory, config and ports. */
class Coturn {
  readonly dir = mkdtempSync(join(tmpdir(), "gg-coturn-"));
  readonly port: number;
  proc: Subprocess<"ignore", "ignore", "pipe"> | undefined;

  constructor(readonly name: string, extra: string[], base: number) {
    this.port = base;
    const config = [
      `listening-ip=${HOST}`,
      `listening-port=${base}`,
      `relay-ip=${HOST}`,
      `min-port=${base + 10}`,
      `max-port=${base + 60}`,
      `realm=${REALM}`,
      "fingerprint",
      "no-tls",
      "no-dtls",
      "no-cli",
      "no-rfc5780",
      "allow-loopback-peers", // the peer in this test is on 127.0.0.1
      "max-allocate-lifetime=6", // refreshes (at 3 s) and expiry happen within the test
      `userdb=${join(this.dir, "turndb")}`,
      `pidfile=${join(this.dir, "turnserver.pid")}`,
      `log-file=${join(this.dir, "turn.log")}`,
      "simple-log",
      "verbose",
      ...extra,
    ];
    writeFileSync(join(this.dir, "turnserver.conf"), config.join("\n") + "\n");
  }

  get server(): Endpoint {
    return { address: HOST, port: this.port };
  }

  async start(): Promise<void> {
    this.proc = spawn(["turnserver", "-c", join(this.dir, "turnserver.conf"), "--no-cli"], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    // Ready when it answers a STUN binding request.
    const probe = await Bun.udpSocket({ hostname: HOST, port: 0, socket: { data: () => { answered = true; }, error: () => {} } });
    let answered = false;
    try {
      await until(() => {
        if (this.proc!.exitCode !== null) throw new Error(`turnserver (${this.name}) exited ${this.proc!.exitCode}: ${this.log().slice(-2000)}`);
        probe.send(new StunWriter(StunMethod.binding, StunClass.request, crypto.getRandomValues(new Uint8Array(12))).finish(), this.port, HOST);
        return answered;
      }, 10_000, `turnserver (${this.name}) answering on ${HOST}:${this.port}`);
    } finally {
      probe.close();
    }
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, "turn.log"), "utf8");
    } catch {
      return "";
    }
  }

  async stop(): Promise<void> {
    if (this.proc && this.proc.exitCode === null) {
      this.proc.kill("SIGTERM");
      await this.proc.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The IO shell: a UDP socket, the client, timers on a short interval, a hook to drop datagrams. */
class Shell {
  readonly events: TurnEvent[] = [];
  readonly fromRelay: StunMessage[] = [];
  readonly relayed: { from: Endpoint; data: Uint8Array }[] = [];
  drop: (data: Uint8Array) => boolean = () => false;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #buf = new Uint8Array(2048);

  private constructor(readonly client: TurnClient, readonly socket: Bun.udp.Socket<"buffer">, readonly logs: LogLine[]) {}

  static async open(opts: Omit<TurnClientOptions, "log">): Promise<Shell> {
    let shell: Shell | undefined;
    const socket = await Bun.udpSocket({
      hostname: HOST,
      port: 0,
      // ICMP errors (a peer socket already closed) surface as socket errors: nothing to do with them here.
      socket: { data: (_s, buf, port, address) => shell?.receive(new Uint8Array(buf), { address, port }), error: () => {} },
    });
    const logs: LogLine[] = [];
    const client = new TurnClient({ ...opts, log: new Logger(parseLogFilter("debug"), memorySink(logs)).target("turn") }, performance.now());
    shell = new Shell(client, socket, logs);
    shell.#timer = setInterval(() => shell!.tick(), 10);
    shell.flush();
    return shell;
  }

  get local(): Endpoint {
    return { address: HOST, port: this.socket.port };
  }

  receive(data: Uint8Array, from: Endpoint): void {
    const now = performance.now();
    if (data[0]! < 4) {
      const m = parseStun(data);
      if (m instanceof StunMessage) this.fromRelay.push(m);
      this.client.handleInput(data, data.length, from, now, this.local);
    } else {
      const channel = this.client.decapsulate(data, data.length, from, now);
      if (channel) this.relayed.push({ from: channel.peer, data: data.slice(CHANNEL_DATA_HEADER, CHANNEL_DATA_HEADER + channelDataLength(data)) });
    }
    this.flush();
  }

  /** Sends `payload` to `peer` through the relay on its channel; false when the channel is not usable. */
  sendTo(peer: Endpoint, payload: Uint8Array): boolean {
    const now = performance.now();
    const channel = this.client.bindChannel(peer, now);
    if (!channel) return false;
    this.#buf.set(payload, CHANNEL_DATA_HEADER);
    const n = this.client.encapsulate(this.#buf, payload.length, channel, now);
    if (n > 0) this.socket.send(this.#buf.subarray(0, n), this.client.server!.port, this.client.server!.address);
    this.flush();
    return n > 0;
  }

  tick(): void {
    const now = performance.now();
    const t = this.client.pollTimeout();
    if (t !== undefined && t <= now) this.client.handleTimeout(now);
    this.flush();
  }

  flush(): void {
    for (let t = this.client.pollTransmit(); t; t = this.client.pollTransmit()) {
      if (!this.drop(t.data)) this.socket.send(t.data, t.to.port, t.to.address);
    }
    for (let e = this.client.pollEvent(); e; e = this.client.pollEvent()) this.events.push(e);
  }

  ofType<T extends TurnEvent["type"]>(type: T): Extract<TurnEvent, { type: T }>[] {
    return this.events.filter((e) => e.type === type) as Extract<TurnEvent, { type: T }>[];
  }

  close(): void {
    clearInterval(this.#timer);
    this.socket.close();
  }
}

/** A plain UDP socket standing for the remote peer: records what arrives, answers on request. */
async function openPeer() {
  const got: { from: Endpoint; data: Uint8Array }[] = [];
  const socket = await Bun.udpSocket({ hostname: HOST, port: 0, socket: { data: (_s, buf, port, address) => void got.push({ from: { address, port }, data: new Uint8Array(buf) }), error: () => {} } });
  return { socket, got, endpoint: { address: HOST, port: socket.port } as Endpoint };
}

const isRefresh = (d: Uint8Array) => {
  const m = parseStun(d);
  return m instanceof StunMessage && m.method === StunMethod.refresh && m.cls === StunClass.request;
};
const text = (s: string) => new TextEncoder().encode(s);

describe.skipIf(skip !== undefined)("TURN client against coturn", () => {
  // Private ports chosen from the PID so parallel runs of other suites do not collide.
  const base = 40000 + (process.pid % 100) * 200;
  const staticUser = new Coturn("static user", ["lt-cred-mech", "user=alice:wonderland", "stale-nonce=2"], base);
  const rest = new Coturn("TURN REST", ["use-auth-secret", `static-auth-secret=${SECRET}`], base + 100);
  const shells: Shell[] = [];
  const peers: Bun.udp.Socket<"buffer">[] = [];

  beforeAll(async () => {
    await staticUser.start();
    await rest.start();
  });

  afterAll(async () => {
    for (const s of shells) s.close();
    for (const p of peers) p.close();
    await staticUser.stop();
    await rest.stop();
  });

  async function shell(opts: Omit<TurnClientOptions, "log">): Promise<Shell> {
    const s = await Shell.open(opts);
    shells.push(s);
    return s;
  }

  test("allocate, refresh with a fresh nonce, permission, channel bind and data relayed both ways (static user)", async () => {
    const s = await shell({ servers: [staticUser.server], username: "alice", password: "wonderland", realm: REALM });
    await until(() => s.client.state === "allocated", 10_000, "allocation");
    const [allocated] = s.ofType("allocated");
    expect(allocated!.relays.length).toBeGreaterThanOrEqual(1);
    const relay = allocated!.relays.find((r) => r.address === HOST)!;
    expect(relay.port).toBeGreaterThanOrEqual(staticUser.port + 10);
    expect(allocated!.srflx).toEqual(s.local); // no NAT on loopback: the relay sees our socket
    expect(allocated!.lifetimeS).toBe(6);
    // Asked for IPv6 too (as Firezone does); coturn 4.6 with only an IPv4 relay-ip grants IPv4 alone, without an error.
    expect(allocated!.relays.every((r) => !r.address.includes(":"))).toBe(true);

    const peer = await openPeer();
    peers.push(peer.socket);
    s.client.createPermission(HOST, performance.now());
    expect(s.sendTo(peer.endpoint, text("hello"))).toBe(true); // on the channel being bound
    await until(() => s.ofType("channel_bound").length === 1, 10_000, "channel bound");
    expect(s.ofType("channel_bound")[0]!.channel).toBe(0x4000);
    // The relay forwards from the relayed address; the first datagram may have raced the binding.
    await until(() => {
      s.sendTo(peer.endpoint, text("hello"));
      return peer.got.some((g) => new TextDecoder().decode(g.data) === "hello");
    }, 10_000, "data relayed to the peer");
    expect(peer.got[0]!.from).toEqual(relay);
    // And back: the peer answers the relayed address, the client gets ChannelData.
    await until(() => {
      peer.socket.send(text("world"), relay.port, relay.address);
      return s.relayed.length > 0;
    }, 10_000, "data relayed from the peer");
    expect(s.relayed[0]!.from).toEqual(peer.endpoint);
    expect(new TextDecoder().decode(s.relayed[0]!.data)).toBe("world");
    expect(s.client.relayedBytesReceived).toBeGreaterThanOrEqual(5);

    // Lifetime 6 s → a refresh at 3 s; coturn's nonce lives 2 s, so the refresh meets 438 and is redone.
    // (coturn grants its default 600 s on refresh whatever max-allocate-lifetime says: one refresh here.)
    await until(() => s.fromRelay.some((m) => m.method === StunMethod.refresh && m.cls === StunClass.success), 20_000, "a refresh").catch((err) => {
      throw new Error(`${err.message}\nclient saw: ${s.fromRelay.map((m) => `${m.method}/${m.cls}${m.errorCode ? ` ${m.errorCode.code}` : ""}`).join(" ")}\nevents: ${JSON.stringify(s.events)}\nlogs: ${s.logs.map((l) => l.msg).join("; ")}`, { cause: err });
    });
    expect(s.fromRelay.some((m) => m.method === StunMethod.refresh && m.errorCode?.code === 438)).toBe(true);
    expect(s.client.expiresAt! - performance.now()).toBeGreaterThan(60_000);
    expect(s.ofType("failed")).toEqual([]);
    expect(s.ofType("candidates_invalidated")).toEqual([]);
    expect(s.logs.some((l) => l.target === "turn" && l.msg === "allocated")).toBe(true);
  }, 60_000);

  test("a wrong password ends in a clear auth failure", async () => {
    const s = await shell({ servers: [staticUser.server], username: "alice", password: "looking-glass" });
    await until(() => s.client.state === "failed", 10_000, "failure");
    const [failed] = s.ofType("failed");
    expect(failed!.reason).toBe("auth");
    expect(failed!.detail).toContain("refused the credentials for alice");
    expect(s.client.failures.get("auth")).toBe(1);
  }, 30_000);

  test("an allocation whose refreshes are lost expires; the client notices and allocates again", async () => {
    const s = await shell({ servers: [staticUser.server], username: "alice", password: "wonderland" });
    await until(() => s.client.state === "allocated", 10_000, "allocation");
    s.drop = isRefresh; // every refresh (and its retransmissions) lost on the way
    await until(() => s.ofType("candidates_invalidated").length === 1, 15_000, "expiry");
    expect(s.ofType("candidates_invalidated")[0]!.reason).toBe("expired");
    s.drop = () => false;
    await until(() => s.ofType("allocated").length === 2 && s.client.state === "allocated", 15_000, "a new allocation");
    // coturn expired the old one too: the new allocation was granted, not refused as a mismatch.
    expect(s.ofType("failed")).toEqual([]);
  }, 60_000);

  test("TURN REST credentials (use-auth-secret): allocate and relay with expiry:user / HMAC password; a wrong secret is refused", async () => {
    const good = turnRestCredentials(SECRET, "gateway", Date.now() / 1000 + 3600);
    const s = await shell({ servers: [rest.server], ...good });
    await until(() => s.client.state === "allocated", 10_000, "allocation");
    const peer = await openPeer();
    peers.push(peer.socket);
    await until(() => {
      s.sendTo(peer.endpoint, text("rest"));
      return peer.got.length > 0;
    }, 10_000, "data relayed");
    const bad = turnRestCredentials("not-the-secret", "gateway", Date.now() / 1000 + 3600);
    const b = await shell({ servers: [rest.server], ...bad });
    await until(() => b.client.state === "failed", 10_000, "failure");
    expect(b.ofType("failed")[0]!.reason).toBe("auth");
    const expired = turnRestCredentials(SECRET, "gateway", Date.now() / 1000 - 60);
    const e = await shell({ servers: [rest.server], ...expired });
    await until(() => e.client.state === "failed", 10_000, "failure");
    expect(e.ofType("failed")[0]!.reason).toBe("auth");
  }, 60_000);
});
