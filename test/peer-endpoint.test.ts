// Store peers (admin UI/API) with real wireguard-go clients: an Endpoint set in the API is applied
// live — with a PersistentKeepalive the gateway dials the client itself, by IP literal or by a
// hostname the gateway resolves — and a stored peer claiming a config file peer's tunnel address
// is refused from the data plane at start with an error naming both, instead of silently taking
// that address's packets away from one of them.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { Store } from "../src/store/index.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { CLIENT_PORT, Topology, type Client } from "./support/topology.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping peer endpoint tests: ${skip}`);

/** Seconds since the client's last handshake with the gateway, as `wg show` reports it (0 = never). */
const lastHandshake = (c: Client): number => Number(c.ns.exec(["wg", "show", c.wgIf, "latest-handshakes"]).trim().split(/\s+/)[1]);
/** Bytes the client's wireguard-go sent to the gateway: 0 means it never spoke first. */
const txBytes = (c: Client): number => Number(c.ns.exec(["wg", "show", c.wgIf, "transfer"]).trim().split(/\s+/)[2]);

describe.skipIf(skip !== undefined)("store peer Endpoint and tunnel addresses with wireguard-go clients", () => {
  let topo: Topology;
  /** `ip netns exec` mounts this over /etc/hosts inside the gateway's namespace only. */
  let hostsDir = "";
  const HOSTNAME = "client2.glassgate-test.internal";

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 3);
    const [fileClient, literal, named] = topo.clients as [Client, Client, Client];
    await topo.configureClient(fileClient);
    // These two know no address for the gateway: only the gateway can start their tunnels.
    await topo.configureClient(literal, 0, { endpoint: false });
    await topo.configureClient(named, 0, { endpoint: false });
    hostsDir = join("/etc/netns", topo.gw.name);
    mkdirSync(hostsDir, { recursive: true });
    writeFileSync(join(hostsDir, "hosts"), `127.0.0.1 localhost\n${named.underlayIp} ${HOSTNAME}\n`);
    // A database from before the refusal existed: a UI peer with the file peer's tunnel address.
    const store = Store.open(join(topo.dir, "data"));
    store.sqlite.run("INSERT INTO peers (id, name, public_key, allowed_ips) VALUES ('dup', 'squatter', ?, ?)", [encodeKey(publicKeyOf(generatePrivateKey())), `${fileClient.tunnelIp}/32`]);
    store.close();
    await topo.startGateway({}, 1);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
    if (hostsDir) rmSync(hostsDir, { recursive: true, force: true });
  });

  test("at start, a stored peer with a file peer's tunnel address is skipped with an error naming both; the file peer works", () => {
    const line = topo.gatewayLog.split("\n").find((l) => l.includes("stored peer skipped: its tunnel address is another peer's"));
    expect(line).toBeDefined();
    const c = topo.clients[0]!;
    expect(JSON.parse(line!)).toMatchObject({ level: "error", peer: "squatter", peer_id: "dup", address: `${c.tunnelIp}/32`, other_peer: expect.stringContaining(c.publicKey) });
    expect(topo.connections().map((x) => x.public_key)).toEqual([c.publicKey]);
    const out = sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "2", "-i", "0.2", "-W", "2", topo.gwTunnelIp], { allowFail: true });
    expect(out).toContain("2 received");
  });

  test("an API peer with the client's Endpoint (IP) and a keepalive comes up by itself: the gateway initiates", async () => {
    const c = topo.clients[1]!;
    expect(lastHandshake(c)).toBe(0);
    const r = topo.request("POST", "/api/peers", { name: "pull-ip", publicKey: c.publicKey, allowedIps: `${c.tunnelIp}/32`, endpoint: `${c.underlayIp}:${CLIENT_PORT}`, persistentKeepalive: 25 });
    expect(r.status).toBe(201);
    await waitFor("the client to see a handshake it did not start", () => lastHandshake(c) > 0, 10_000);
    // wireguard-go learnt the gateway's address from the initiation it answered.
    expect(c.ns.exec(["wg", "show", c.wgIf, "endpoints"])).toContain(`${topo.gwUnderlayFor(c)}:52625`);
    expect(topo.connections().find((x) => x.public_key === c.publicKey)!.handshakes.completed).toBeGreaterThanOrEqual(1);
    expect(txBytes(c)).toBeGreaterThan(0); // its response, after the gateway spoke first
  }, 30_000);

  test("an API peer whose Endpoint is a hostname comes up once the gateway resolves it", async () => {
    const c = topo.clients[2]!;
    expect(lastHandshake(c)).toBe(0);
    const r = topo.request("POST", "/api/peers", { name: "pull-name", publicKey: c.publicKey, allowedIps: `${c.tunnelIp}/32`, endpoint: `${HOSTNAME}:${CLIENT_PORT}`, persistentKeepalive: 25 });
    expect(r.status).toBe(201);
    const line = await waitFor("the name to resolve", () => topo.gatewayLog.split("\n").find((l) => l.includes('"msg":"peer endpoint resolved"')), 10_000);
    expect(JSON.parse(line)).toMatchObject({ peer: "pull-name", address: c.underlayIp });
    await waitFor("the client to see a handshake it did not start", () => lastHandshake(c) > 0, 10_000);
    const out = sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "2", "-i", "0.2", "-W", "2", topo.gwTunnelIp], { allowFail: true });
    expect(out).toContain("2 received");
  }, 30_000);

  test("the API refuses a new peer with a file peer's address, naming it", () => {
    const r = topo.request("POST", "/api/peers", { name: "again", allowedIps: `${topo.clients[0]!.tunnelIp}/32` });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).fields.allowedIps).toContain(`is already an address of the config file's peer at line 6 (${topo.clients[0]!.publicKey})`);
  });
});
