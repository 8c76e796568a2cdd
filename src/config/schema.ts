// The validated shape of a glassgate config: wg-quick [Interface]/[Peer] keys, checked with zod,
// each failure reported as "file:line: Key: value … why".
import { z } from "zod";
import { decodeKey, encodeKey, publicKeyOf, publicKeyProblem } from "../crypto/x25519.ts";
import { parseCidr, type Cidr } from "../ip/address.ts";
import { AddressIndex, clashMessage, type AddressOwner } from "./overlap.ts";
import { ConfigError, quoteValue, readSections, type Entry, type Section } from "./wg-quick.ts";
import { parseFilterText, parseResource, ResourceId, type Resource } from "../gateway/resources.ts";

export const DEFAULT_LISTEN_PORT = 52625; // Firezone's gateway port: 49152 + 3473 ("FIRE")
export const DEFAULT_MTU = 1420;

const key = z.string().transform((v, ctx) => {
  try {
    return decodeKey(v);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});
/** A peer's public key: well-formed and usable (not a low-order point, see isUsablePublicKey). */
const publicKey = z.string().transform((v, ctx) => {
  const problem = publicKeyProblem(v);
  if (problem) {
    ctx.addIssue({ code: "custom", message: problem });
    return z.NEVER;
  }
  return decodeKey(v);
});
/** Our own private key: any 32 bytes work once clamped, except all zeros, which `wg` reads as "no key". */
const privateKey = key.refine((k) => k.some((b) => b !== 0), "is all zeros: not a private key (make one with `glassgate keygen`)");
const port = z.string().regex(/^[0-9]+$/, "is not a number").transform(Number).refine((n) => n <= 65535, "is not a port (0–65535)");
const cidrList = (clearHostBits: boolean) =>
  z.string().transform((v, ctx) => {
    const out: Cidr[] = [];
    for (const item of v.split(",").map((s) => s.trim()).filter(Boolean)) {
      try {
        out.push(parseCidr(item, { clearHostBits }));
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    }
    return out;
  });
const endpoint = z.string().transform((v, ctx) => {
  const m = /^\[([^\]]+)\]:([0-9]+)$/.exec(v) ?? /^([^:]+):([0-9]+)$/.exec(v);
  if (!m || Number(m[2]) > 65535 || Number(m[2]) === 0) {
    ctx.addIssue({ code: "custom", message: 'is not "host:port" or "[v6]:port"' });
    return z.NEVER;
  }
  return { host: m[1]!, port: Number(m[2]) };
});

/** A peer's access to a resource; `expiresAt` (Unix ms) or null for no expiry. */
export interface ResourceGrant {
  rid: string;
  expiresAt: number | null;
}

export interface PeerConfig {
  publicKey: Uint8Array;
  /** glassgate key: `Resources = lan, db@2026-12-31T00:00:00Z` (only with [Resource] sections). */
  resources: ResourceGrant[];
  presharedKey?: Uint8Array;
  allowedIPs: Cidr[];
  endpoint?: { host: string; port: number };
  persistentKeepalive?: number;
  /** The line of its [Peer] header, for messages. */
  line: number;
}

export interface InterfaceConfig {
  privateKey: Uint8Array;
  listenPort: number;
  addresses: Cidr[];
  mtu: number;
  dns: string[];
}

export interface WireguardConfig {
  file: string;
  interface: InterfaceConfig;
  peers: PeerConfig[];
  /** glassgate [Resource] sections. With none, the gateway forwards whatever AllowedIPs permit. */
  resources: Resource[];
}

type Field = { schema: z.ZodType; prop: string; list?: boolean };

const INTERFACE_KEYS: Record<string, Field> = {
  PrivateKey: { schema: privateKey, prop: "privateKey" },
  ListenPort: { schema: port, prop: "listenPort" },
  Address: { schema: cidrList(false), prop: "addresses", list: true },
  MTU: { schema: z.string().regex(/^[0-9]+$/, "is not a number").transform(Number).refine((n) => n >= 1280 && n <= 9000, "is not an MTU (1280–9000)"), prop: "mtu" },
  DNS: { schema: z.string().transform((v) => v.split(",").map((s) => s.trim()).filter(Boolean)), prop: "dns", list: true },
};
const PEER_KEYS: Record<string, Field> = {
  PublicKey: { schema: publicKey, prop: "publicKey" },
  PresharedKey: { schema: key, prop: "presharedKey" },
  AllowedIPs: { schema: cidrList(true), prop: "allowedIPs", list: true },
  Endpoint: { schema: endpoint, prop: "endpoint" },
  PersistentKeepalive: {
    schema: z.string().transform((v) => (v === "off" ? "0" : v)).pipe(port),
    prop: "persistentKeepalive",
  },
  Resources: {
    schema: z.string().transform((v, ctx) => {
      const out: ResourceGrant[] = [];
      for (const item of v.split(",").map((x) => x.trim()).filter(Boolean)) {
        const [rid, expiry] = item.split("@") as [string, string | undefined];
        const expiresAt = expiry === undefined ? null : Date.parse(expiry);
        if (expiresAt !== null && Number.isNaN(expiresAt)) {
          ctx.addIssue({ code: "custom", message: `"${item}" has an expiry that is not a date (id@2026-12-31T00:00:00Z)` });
          return z.NEVER;
        }
        out.push({ rid: rid.trim(), expiresAt });
      }
      return out;
    }),
    prop: "resources",
    list: true,
  },
};

const RESOURCE_KEYS: Record<string, Field> = {
  Id: { schema: ResourceId, prop: "id" },
  Name: { schema: z.string(), prop: "name" },
  Type: { schema: z.enum(["cidr", "dns", "internet"], { message: "is not a resource type (cidr, dns or internet)" }), prop: "type" },
  Address: { schema: z.string(), prop: "address" },
  Filters: {
    schema: z.string().transform((v, ctx) => {
      try {
        return parseFilterText(v);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    }),
    prop: "filters",
  },
};
/** wg-quick keys that configure the host, not the tunnel: accepted and left to the operator. */
const IGNORED_KEYS = new Set(["Table", "PreUp", "PostUp", "PreDown", "PostDown", "SaveConfig", "FwMark"]);

function applyEntries(section: Section, fields: Record<string, Field>, file: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (const e of section.entries) {
    const field = fields[e.key];
    if (!field) {
      if (IGNORED_KEYS.has(e.key)) continue;
      throw new ConfigError(file, e.line, e.key.length > 64 ? quoteValue(e.key, 64) : e.key, `unknown key in [${section.name}] (known: ${Object.keys(fields).join(", ")})`);
    }
    if (seen.has(e.key) && !field.list) throw new ConfigError(file, e.line, e.key, "set twice in one section");
    seen.add(e.key);
    const parsed = field.schema.safeParse(e.value);
    if (!parsed.success) throw fieldError(file, e, parsed.error.issues[0]?.message ?? "is invalid");
    if (!field.list) out[field.prop] = parsed.data;
    else {
      // Appended in place: copying the list per line made 40 000 `AllowedIPs =` lines take 14 s.
      const list = ((out[field.prop] as unknown[] | undefined) ??= []);
      for (const item of parsed.data as unknown[]) list.push(item);
    }
  }
  return out;
}

function fieldError(file: string, e: Entry, message: string): ConfigError {
  // Messages from our own parsers already quote the value; zod's built-ins need it prepended.
  return new ConfigError(file, e.line, e.key, message.startsWith('"') ? capMessage(message) : `${quoteValue(e.value)} ${capMessage(message)}`);
}

/**
 * Our parsers quote the whole value they reject: a 1 MB value must not become a 1 MB message,
 * nor an escape sequence reach the terminal that shows it.
 */
function capMessage(message: string): string {
  const capped = message.length > 300 ? `${message.slice(0, 300)}…` : message;
  return capped.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** How messages name a file peer: by its [Peer] line and key (file peers have no name). */
export function filePeerLabel(line: number, publicKey: string): string {
  return `the config file's peer at line ${line} (${publicKey})`;
}

/** A file peer as the address-overlap check names it. */
export function filePeerOwner(p: PeerConfig): AddressOwner {
  return { label: filePeerLabel(p.line, encodeKey(p.publicKey)), allowedIPs: p.allowedIPs };
}

export function parseConfig(text: string, file: string): WireguardConfig {
  const sections = readSections(text, file);
  const ifaces = sections.filter((s) => s.name === "Interface");
  if (ifaces.length !== 1) {
    throw new ConfigError(file, ifaces[1]?.line, undefined, ifaces.length === 0 ? "no [Interface] section" : "more than one [Interface] section");
  }
  const iface = applyEntries(ifaces[0]!, INTERFACE_KEYS, file);
  if (!iface.privateKey) throw new ConfigError(file, ifaces[0]!.line, "PrivateKey", "missing in [Interface]");

  const resources: Resource[] = [];
  const resourceIds = new Set<string>();
  for (const s of sections.filter((s) => s.name === "Resource")) {
    const r = applyEntries(s, RESOURCE_KEYS, file);
    try {
      const res = parseResource(r);
      if (resourceIds.has(res.id)) throw new Error(`Id "${res.id}" is used twice`);
      resourceIds.add(res.id);
      resources.push(res);
    } catch (err) {
      throw new ConfigError(file, s.line, undefined, `[Resource]: ${(err as Error).message}`);
    }
  }

  const peers: PeerConfig[] = [];
  const seenKeys = new Map<string, number>();
  const owners = new AddressIndex<AddressOwner>();
  const ownPublicKey = encodeKey(publicKeyOf(iface.privateKey as Uint8Array));
  for (const s of sections.filter((s) => s.name === "Peer")) {
    const p = applyEntries(s, PEER_KEYS, file) as Partial<PeerConfig>;
    if (!p.publicKey) throw new ConfigError(file, s.line, "PublicKey", "missing in [Peer]");
    const k = Buffer.from(p.publicKey).toString("base64");
    // wireguard-go drops a peer whose key is the interface's own: a handshake with ourselves is no tunnel.
    if (k === ownPublicKey) throw new ConfigError(file, s.line, "PublicKey", `"${k}" is this gateway's own public key (from PrivateKey)`);
    if (seenKeys.has(k)) throw new ConfigError(file, s.line, "PublicKey", `"${k}" is already the peer at line ${seenKeys.get(k)}`);
    seenKeys.set(k, s.line);
    for (const g of p.resources ?? []) {
      if (!resourceIds.has(g.rid)) {
        throw new ConfigError(file, s.entries.find((e) => e.key === "Resources")?.line ?? s.line, "Resources", `${quoteValue(g.rid)} is not the Id of any [Resource]`);
      }
    }
    const peer: PeerConfig = { allowedIPs: [], resources: [], ...p, publicKey: p.publicKey, line: s.line };
    const owner = filePeerOwner(peer);
    const clash = owners.clashOf(owner);
    if (clash) throw new ConfigError(file, s.entries.find((e) => e.key === "AllowedIPs")?.line ?? s.line, "AllowedIPs", clashMessage(clash));
    owners.add(owner);
    peers.push(peer);
  }
  return {
    file,
    interface: {
      privateKey: iface.privateKey as Uint8Array,
      listenPort: (iface.listenPort as number | undefined) ?? DEFAULT_LISTEN_PORT,
      addresses: (iface.addresses as Cidr[] | undefined) ?? [],
      mtu: (iface.mtu as number | undefined) ?? DEFAULT_MTU,
      dns: (iface.dns as string[] | undefined) ?? [],
    },
    peers,
    resources,
  };
}
