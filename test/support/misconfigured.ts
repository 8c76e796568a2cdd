// Six real wireguard-go clients, each misconfigured the way users get it wrong, against one
// gateway, so that every named problem arises at once (shared by the API/Sentry tests and the
// Chromium tests): a wrong preshared key (psk), the wrong gateway public key (wrongKey), packets
// from an address outside AllowedIPs (outside), a peer that never connects (never), an Endpoint
// nobody answers at (silent), a key the gateway does not know (unknown), and a stored peer with
// psk's tunnel address (the squatter, from a database written before duplicates were refused).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import { Store } from "../../src/store/index.ts";
import { uniqueTag } from "./netns.ts";
import { Topology, type Client } from "./topology.ts";

/** Every problem kind the gateway names, in the order the tests walk them. */
export const PROBLEM_KINDS = ["psk_mismatch", "wrong_gateway_key", "unknown_key", "allowed_ips", "never_connected", "endpoint_unreachable", "duplicate_address"] as const;

export interface Misconfigured {
  topo: Topology;
  psk: Client;
  wrongKey: Client;
  outside: Client;
  never: Client;
  silent: Client;
  unknown: Client;
  /** The stored peer holding psk's tunnel address. */
  squatterKey: string;
  /** The second address `outside` sends from. */
  outsideSource: string;
}

/**
 * Builds the network, misconfigures the clients, starts the gateway (with `env` added) and makes
 * each client try. `beforeGateway` runs once the namespaces exist (e.g. to start a Sentry stand-in
 * in the gateway's namespace). The problems appear over the next ~20 s (three unconfirmed
 * handshakes for the PSK mismatch, GLASSGATE_NEVER_CONNECTED_SECONDS=3 for the never-connected).
 */
export async function startMisconfigured(env: Record<string, string> = {}, beforeGateway?: (topo: Topology) => void): Promise<Misconfigured> {
  const topo = new Topology(uniqueTag(), 6);
  const [psk, wrongKey, outside, never, silent, unknown] = topo.clients as [Client, Client, Client, Client, Client, Client];
  const squatterKey = encodeKey(publicKeyOf(generatePrivateKey()));
  const outsideSource = `10.99.${topo.net}.77`;
  try {
    beforeGateway?.(topo);
    // Wrong preshared key: the gateway has one, the client another.
    await topo.configureClient(psk);
    const pskFile = join(topo.dir, "client-psk");
    writeFileSync(pskFile, encodeKey(generatePrivateKey()));
    psk.ns.exec(["wg", "set", psk.wgIf, "peer", encodeKey(publicKeyOf(topo.gwKey)), "preshared-key", pskFile]);
    // The wrong gateway public key: a key that is not the gateway's, at the gateway's address.
    await topo.configureClient(wrongKey);
    wrongKey.ns.exec(["wg", "set", wrongKey.wgIf, "peer", encodeKey(publicKeyOf(topo.gwKey)), "remove"]);
    wrongKey.ns.exec(["wg", "set", wrongKey.wgIf, "peer", encodeKey(publicKeyOf(generatePrivateKey())), "endpoint", `${topo.gwUnderlayFor(wrongKey)}:52625`, "allowed-ips", `10.99.${topo.net}.0/24`]);
    // Sends from a second address on its tunnel interface, outside its AllowedIPs (/32).
    await topo.configureClient(outside);
    outside.ns.exec(["ip", "addr", "add", `${outsideSource}/24`, "dev", outside.wgIf]);
    // `never` and `silent` are configured on the gateway only: their wireguard-go has no key and
    // does not listen, so the gateway's initiations to silent's Endpoint go unanswered.
    // `unknown` is configured correctly, but the gateway has no peer with its key.
    await topo.configureClient(unknown);
    const store = Store.open(join(topo.dir, "data"));
    store.sqlite.run("INSERT INTO peers (id, name, public_key, allowed_ips) VALUES ('dup', 'squatter', ?, ?)", [squatterKey, `${psk.tunnelIp}/32`]);
    store.close();
    await topo.startGateway(
      { GLASSGATE_NEVER_CONNECTED_SECONDS: "3", ...env },
      5,
      { withEndpoints: [silent.index], peerLines: { [psk.index]: [`PresharedKey = ${encodeKey(generatePrivateKey())}`], [silent.index]: ["PersistentKeepalive = 5"] } },
    );
    // Traffic that makes each client try: its handshakes are retried every 5 s while packets wait.
    for (const c of [psk, wrongKey, unknown]) c.ns.start(["ping", "-c", "40", "-i", "1", "-W", "1", topo.gwTunnelIp]);
    outside.ns.start(["ping", "-c", "40", "-i", "1", "-W", "1", "-I", outsideSource, topo.gwTunnelIp]);
  } catch (err) {
    await topo.destroy();
    throw err;
  }
  return { topo, psk, wrongKey, outside, never, silent, unknown, squatterKey, outsideSource };
}
