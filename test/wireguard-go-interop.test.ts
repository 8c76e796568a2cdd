// Interop with the reference userspace implementation: wireguard-go in a network namespace this
// test creates, configured with `wg`, talking to glassgate's sans-IO core driven through a Bun
// UDP socket. Proves byte-exactness: both handshake directions, then ICMP echo through the tunnel.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Aead } from "../src/crypto/aead.ts";
import { nobleAead } from "../src/crypto/aead-noble.ts";
import { loadSodiumAead } from "../src/crypto/aead-sodium.ts";
import { encodeKey, generatePrivateKey, publicKeyOf, randomBytes } from "../src/crypto/x25519.ts";
import { LocalIdentity, WirePeer, type Endpoint, type WireEvent } from "../src/wire/index.ts";
import { icmpEcho, parseEcho } from "./support/icmp.ts";
import { Netns, sh, skipReason, uniqueTag, vethInto, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping wireguard-go interop: ${skip}`);

const GG_TUNNEL = "10.99.0.1";
const WG_TUNNEL = "10.99.0.2";
const WG_PORT = 51820;

/** The thin IO shell a test needs: one UDP socket feeding one WirePeer, timers on an interval. */
class UdpDriver {
  readonly events: WireEvent[] = [];
  readonly inner: Uint8Array[] = [];
  readonly #out = new Uint8Array(65536 + 32);
  #timer: ReturnType<typeof setInterval> | undefined;
  onPacket: ((packet: Uint8Array) => void) | undefined;

  private constructor(readonly peer: WirePeer, readonly socket: Bun.udp.Socket<"buffer">) {}

  static async open(hostname: string, makePeer: () => WirePeer): Promise<UdpDriver> {
    const peer = makePeer();
    let driver: UdpDriver | undefined;
    const socket = await Bun.udpSocket({
      hostname,
      port: 0,
      socket: {
        data(_s, buf, port, address) {
          driver?.receive(new Uint8Array(buf), { address, port });
        },
      },
    });
    driver = new UdpDriver(peer, socket);
    driver.#timer = setInterval(() => driver!.tick(), 20);
    return driver;
  }

  receive(datagram: Uint8Array, from: Endpoint): void {
    const n = this.peer.decapsulate(datagram, from, this.#out, Date.now());
    if (n > 0) {
      const packet = this.#out.slice(0, n);
      this.inner.push(packet);
      this.onPacket?.(packet);
    }
    this.flush();
  }

  sendInner(packet: Uint8Array): void {
    const n = this.peer.encapsulate(packet, this.#out, Date.now());
    if (n > 0) this.socket.send(this.#out.subarray(0, n), this.peer.endpoint!.port, this.peer.endpoint!.address);
    this.flush();
  }

  tick(): void {
    const now = Date.now();
    const t = this.peer.pollTimeout();
    if (t !== undefined && t <= now) this.peer.handleTimeout(now);
    this.flush();
  }

  flush(): void {
    for (let t = this.peer.pollTransmit(); t; t = this.peer.pollTransmit()) this.socket.send(t.data, t.to.port, t.to.address);
    for (let e = this.peer.pollEvent(); e; e = this.peer.pollEvent()) this.events.push(e);
  }

  close(): void {
    clearInterval(this.#timer);
    this.socket.close();
    this.peer.zeroize();
  }
}

const backends: [string, () => Aead][] = [
  ["noble", () => nobleAead],
  ["libsodium", () => loadSodiumAead()],
];

describe.skipIf(skip !== undefined)("interop with wireguard-go", () => {
  const tag = uniqueTag();
  const wgIf = `wggo${tag}`;
  let ns: Netns;
  let hostAddr: string;
  let nsAddr: string;
  let wg: ReturnType<Netns["start"]>;
  const wgPrivate = generatePrivateKey();
  const wgPublic = publicKeyOf(wgPrivate);

  beforeAll(async () => {
    ns = new Netns(`gg-wg-${tag}`);
    ({ hostAddr, nsAddr } = vethInto(ns, `ggh${tag}`, `ggn${tag}`, Number(tag) % 16000));
    // Foreground, so the PID we hold is wireguard-go's own and cleanup ends exactly it.
    wg = ns.start(["wireguard-go", "-f", wgIf], { LOG_LEVEL: "error" });
    await waitFor("wireguard-go interface", () => ns.exec(["ip", "link", "show", wgIf], { allowFail: true }).includes(wgIf));
    sh(["ip", "netns", "exec", ns.name, "wg", "set", wgIf, "private-key", "/dev/stdin", "listen-port", String(WG_PORT)], { stdin: encodeKey(wgPrivate) });
    ns.exec(["ip", "addr", "add", `${WG_TUNNEL}/24`, "dev", wgIf]);
    ns.exec(["ip", "link", "set", wgIf, "up"]);
  });

  afterAll(async () => {
    await ns?.destroy();
    expect(wg?.exitCode === null).toBe(false);
  });

  /** (Re)configures wireguard-go's only peer: glassgate's key, at `endpoint` or none. */
  function setWgPeer(ggPublic: Uint8Array, endpoint?: Endpoint) {
    const existing = ns.exec(["wg", "show", wgIf, "peers"]).trim().split("\n").filter(Boolean);
    for (const p of existing) ns.exec(["wg", "set", wgIf, "peer", p, "remove"]);
    const args = ["wg", "set", wgIf, "peer", encodeKey(ggPublic), "allowed-ips", `${GG_TUNNEL}/32`];
    if (endpoint) args.push("endpoint", `${endpoint.address}:${endpoint.port}`);
    ns.exec(args);
  }

  function latestHandshake(ggPublic: Uint8Array): number {
    const line = ns.exec(["wg", "show", wgIf, "latest-handshakes"]).split("\n").find((l) => l.startsWith(encodeKey(ggPublic)));
    return Number(line?.split("\t")[1] ?? 0);
  }

  for (const [name, aead] of backends) {
    test(`glassgate (${name}) initiates; wireguard-go answers an ICMP echo through the tunnel`, async () => {
      const local = new LocalIdentity(generatePrivateKey(), randomBytes);
      const driver = await UdpDriver.open(hostAddr, () =>
        new WirePeer({ aead: aead(), local, remoteStatic: wgPublic, connectionId: 0x34520a, endpoint: { address: nsAddr, port: WG_PORT }, random: randomBytes }),
      );
      try {
        setWgPeer(local.publicKey, { address: hostAddr, port: driver.socket.port });
        const payload = randomBytes(56);
        driver.sendInner(icmpEcho({ src: GG_TUNNEL, dst: WG_TUNNEL, type: 8, id: 0x4747, seq: 1, payload }));

        const done = await waitFor("handshake with wireguard-go", () => driver.events.find((e) => e.type === "handshake_completed"));
        expect(done).toMatchObject({ role: "initiator", remote: { address: nsAddr, port: WG_PORT } });
        expect(latestHandshake(local.publicKey)).toBeGreaterThan(0);

        // The echo request was staged during the handshake and sent when it completed.
        const reply = await waitFor("ICMP echo reply", () => driver.inner.map(parseEcho).find((p) => p?.type === 0));
        expect(reply).toMatchObject({ src: WG_TUNNEL, dst: GG_TUNNEL, id: 0x4747, seq: 1 });
        expect(Buffer.from(reply.payload).equals(Buffer.from(payload))).toBe(true);

        // A second echo on the established session.
        driver.sendInner(icmpEcho({ src: GG_TUNNEL, dst: WG_TUNNEL, type: 8, id: 0x4747, seq: 2, payload }));
        await waitFor("second echo reply", () => driver.inner.map(parseEcho).find((p) => p?.type === 0 && p.seq === 2));
        const transfer = ns.exec(["wg", "show", wgIf, "transfer"]);
        expect(transfer).toContain(encodeKey(local.publicKey));
        expect(driver.peer.drops.total).toBe(0);
      } finally {
        driver.close();
      }
    });

    test(`wireguard-go initiates (ping); glassgate (${name}) responds and echoes`, async () => {
      const local = new LocalIdentity(generatePrivateKey(), randomBytes);
      // No endpoint: glassgate learns it from wireguard-go's authenticated initiation.
      const driver = await UdpDriver.open(hostAddr, () =>
        new WirePeer({ aead: aead(), local, remoteStatic: wgPublic, connectionId: 0x0badc0, random: randomBytes }),
      );
      // Answer echo requests like a host at GG_TUNNEL would.
      driver.onPacket = (p) => {
        const e = parseEcho(p);
        if (e?.type === 8 && e.dst === GG_TUNNEL) {
          driver.sendInner(icmpEcho({ src: GG_TUNNEL, dst: e.src, type: 0, id: e.id, seq: e.seq, payload: e.payload }));
        }
      };
      try {
        setWgPeer(local.publicKey, { address: hostAddr, port: driver.socket.port });
        const ping = ns.start(["ping", "-c", "3", "-i", "0.2", "-W", "2", GG_TUNNEL]);
        const code = await Promise.race([ping.exited, Bun.sleep(15_000).then(() => -1)]);
        const out = await new Response(ping.stdout).text();
        expect(code).toBe(0);
        expect(out).toContain("3 received");
        expect(driver.events.find((e) => e.type === "handshake_completed")).toMatchObject({ role: "responder", remote: { address: nsAddr, port: WG_PORT } });
        expect(driver.events.some((e) => e.type === "session_confirmed")).toBe(true);
        expect(driver.inner.map(parseEcho).filter((p) => p?.type === 8).length).toBe(3);
        expect(latestHandshake(local.publicKey)).toBeGreaterThan(0);
        expect(driver.peer.drops.total).toBe(0);
      } finally {
        driver.close();
      }
    });
  }
});
