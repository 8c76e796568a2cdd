// Writing wg-quick files: a fresh gateway config for first start, and peers added from the CLI
// with the matching client config a stock WireGuard app imports. Existing text is appended to,
// never rewritten, so an operator's comments and layout survive.
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { formatCidr, formatIp, parseCidr, type Cidr } from "../ip/address.ts";
import { DEFAULT_LISTEN_PORT, type WireguardConfig } from "./schema.ts";

export const DEFAULT_GATEWAY_ADDRESS = "10.99.0.1/24";

export function newGatewayConfigText(privateKey: Uint8Array = generatePrivateKey()): string {
  return [
    "# glassgate gateway (wg-quick style). Add peers with: bun run glassgate peers add --config <this file>",
    "[Interface]",
    `PrivateKey = ${encodeKey(privateKey)}`,
    `Address = ${DEFAULT_GATEWAY_ADDRESS}`,
    `ListenPort = ${DEFAULT_LISTEN_PORT}`,
    "",
  ].join("\n");
}

function v4ToInt(b: Uint8Array): number {
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

function intToV4(n: number): Uint8Array {
  return Uint8Array.of(n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
}

/** The lowest host address in the gateway's IPv4 subnet that neither it nor any peer uses. */
export function nextFreeAddress(cfg: WireguardConfig, alsoUsed: Cidr[] = []): string {
  const own = cfg.interface.addresses.find((a) => a.family === 4);
  if (!own) throw new Error(`${cfg.file}: [Interface] has no IPv4 Address to allocate peer addresses from`);
  const used = new Set<number>([v4ToInt(own.bytes)]);
  for (const c of [...cfg.peers.flatMap((p) => p.allowedIPs), ...alsoUsed]) if (c.family === 4 && c.prefix === 32) used.add(v4ToInt(c.bytes));
  const size = 2 ** (32 - own.prefix);
  const net = (v4ToInt(own.bytes) & (own.prefix === 0 ? 0 : (~0 << (32 - own.prefix)))) >>> 0;
  for (let host = 1; host < size - 1; host++) {
    if (!used.has(net + host)) return formatIp(intToV4(net + host));
  }
  throw new Error(`${cfg.file}: no free address left in ${formatIp(intToV4(net))}/${own.prefix}`);
}

export interface NewPeer {
  name: string;
  address: string;
  endpoint: string;
  /** What the client sends through the tunnel; defaults to the gateway's own subnets. */
  clientAllowedIPs?: string[];
  dns?: string;
}

export interface CreatedPeer {
  /** Text to append to the gateway config. */
  gatewaySection: string;
  /** The client's whole wg-quick config. */
  clientConfig: string;
  publicKey: string;
}

export function createPeer(cfg: WireguardConfig, spec: NewPeer): CreatedPeer {
  const clientKey = generatePrivateKey();
  const psk = generatePrivateKey();
  const addr: Cidr = parseCidr(spec.address);
  const clientPub = encodeKey(publicKeyOf(clientKey));
  const gatewaySection = [
    "",
    `[Peer]`,
    `# ${spec.name.replace(/[\r\n]/g, " ")}`,
    `PublicKey = ${clientPub}`,
    `PresharedKey = ${encodeKey(psk)}`,
    `AllowedIPs = ${formatIp(addr.bytes)}/${addr.prefix}`,
    "",
  ].join("\n");
  // By default the client routes the gateway's tunnel subnets (host bits cleared) through it.
  const routes = spec.clientAllowedIPs ?? cfg.interface.addresses.map((a) => formatCidr(parseCidr(formatCidr(a))));
  const clientConfig = clientConfigText({
    name: spec.name,
    privateKey: encodeKey(clientKey),
    address: `${formatIp(addr.bytes)}/${addr.family === 4 ? 32 : 128}`,
    dns: spec.dns,
    gatewayPublicKey: encodeKey(publicKeyOf(cfg.interface.privateKey)),
    presharedKey: encodeKey(psk),
    allowedIPs: routes,
    endpoint: spec.endpoint,
  });
  clientKey.fill(0);
  return { gatewaySection, clientConfig, publicKey: clientPub };
}

export interface ClientConfigSpec {
  name: string;
  privateKey: string;
  address: string;
  dns?: string;
  gatewayPublicKey: string;
  presharedKey?: string;
  allowedIPs: string[];
  endpoint: string;
}

/** The wg-quick config a stock WireGuard client imports. */
export function clientConfigText(c: ClientConfigSpec): string {
  return [
    `# ${c.name.replace(/[\r\n]/g, " ")}: import into any WireGuard client (wg-quick, the desktop and mobile apps)`,
    "[Interface]",
    `PrivateKey = ${c.privateKey}`,
    `Address = ${c.address}`,
    ...(c.dns ? [`DNS = ${c.dns}`] : []),
    "",
    "[Peer]",
    `PublicKey = ${c.gatewayPublicKey}`,
    ...(c.presharedKey ? [`PresharedKey = ${c.presharedKey}`] : []),
    `AllowedIPs = ${c.allowedIPs.join(", ")}`,
    `Endpoint = ${c.endpoint}`,
    "PersistentKeepalive = 25",
    "",
  ].join("\n");
}
