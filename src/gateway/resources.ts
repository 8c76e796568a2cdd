// Resources a gateway serves, as Firezone models them: a CIDR range, a DNS name pattern, or "the
// internet", each with optional filters (TCP/UDP port ranges, ICMP). Validated at the boundary.
import { z } from "zod";
import { formatCidr, parseCidr, type Cidr } from "../ip/address.ts";
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from "../ip/packet.ts";

export type Filter = { protocol: "tcp" | "udp"; portStart: number; portEnd: number } | { protocol: "icmp" };

export type Resource =
  | { type: "cidr"; id: string; name: string; address: Cidr; filters: Filter[] }
  | { type: "dns"; id: string; name: string; pattern: string; filters: Filter[] }
  | { type: "internet"; id: string; name: string; filters: Filter[] };

const FilterSchema = z.object({
  protocol: z.enum(["tcp", "udp", "icmp"]),
  port_range_start: z.number().int().min(0).max(65535).default(0),
  port_range_end: z.number().int().min(0).max(65535).default(65535),
}).refine((f) => f.port_range_start <= f.port_range_end, { message: "port_range_start is above port_range_end" })
  .transform((f): Filter => (f.protocol === "icmp" ? { protocol: "icmp" } : { protocol: f.protocol, portStart: f.port_range_start, portEnd: f.port_range_end }));

/**
 * A resource id, wherever it comes from (config file `Id =`, admin API and form, portal): it
 * appears in URLs and log fields, so it is a plain word — no `/`, `%` or space, and no leading dot
 * (so never `.` or `..`, which a browser would resolve as a path segment). Firezone's UUIDs fit.
 */
export const ResourceId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "is not an id (1–64 of A-Z a-z 0-9 _ . -, starting with a letter or digit)");

/** Firezone's wire shape (portal `resource` objects); also what the config file and API accept. */
export const ResourceSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("cidr"), id: ResourceId, name: z.string().default(""), address: z.string(), filters: z.array(FilterSchema).default([]) }),
  z.object({ type: z.literal("dns"), id: ResourceId, name: z.string().default(""), address: z.string(), filters: z.array(FilterSchema).default([]) }),
  z.object({ type: z.literal("internet"), id: ResourceId, name: z.string().default("Internet"), filters: z.array(FilterSchema).default([]) }),
]);

const FILTER_ITEM = /^(tcp|udp)\/(\d{1,5})(?:-(\d{1,5}))?$|^icmp$/;

/**
 * The text form of filters used by the config file and the admin form — "tcp/22, udp/5000-5100,
 * icmp" — into Firezone's wire shape. Throws naming the first item that is not a filter.
 */
export function parseFilterText(text: string): { protocol: string; port_range_start?: number; port_range_end?: number }[] {
  const out: { protocol: string; port_range_start?: number; port_range_end?: number }[] = [];
  for (const item of text.split(",").map((x) => x.trim().toLowerCase()).filter(Boolean)) {
    const m = FILTER_ITEM.exec(item);
    if (!m) throw new Error(`"${item}" is not a filter (tcp/22, udp/5000-5100 or icmp)`);
    out.push(m[1] ? { protocol: m[1], port_range_start: Number(m[2]), port_range_end: Number(m[3] ?? m[2]) } : { protocol: "icmp" });
  }
  return out;
}

/** Parses one resource; errors name the field and value. */
export function parseResource(raw: unknown): Resource {
  const r = ResourceSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`resource ${i.path.join(".") || "(root)"}: ${i.message}`);
  }
  const v = r.data;
  if (v.type === "cidr") {
    let address: Cidr;
    try {
      address = parseCidr(v.address);
    } catch (err) {
      throw new Error(`resource address: ${(err as Error).message}`);
    }
    return { type: "cidr", id: v.id, name: v.name || formatCidr(address), address, filters: v.filters };
  }
  if (v.type === "dns") {
    const pattern = v.address.trim().toLowerCase().replace(/\.$/, "");
    if (!/^(\*\*\.|\*\.)?([a-z0-9?*-]+\.)*[a-z0-9-]+$/.test(pattern) || pattern.length > 253) {
      throw new Error(`resource address: "${v.address}" is not a domain or wildcard pattern (e.g. app.example.com, *.example.com, **.example.com)`);
    }
    return { type: "dns", id: v.id, name: v.name || pattern, pattern, filters: v.filters };
  }
  return { type: "internet", id: v.id, name: v.name, filters: v.filters };
}

/**
 * Does `domain` match `pattern`? As Firezone's gateway: `*` stands for one label (and a leading
 * `*.` also matches the apex: `*.example.com` matches `example.com`), `**` for any number of
 * labels including none, `?` for one character (never a dot).
 */
export function domainMatches(pattern: string, domain: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, "").split(".");
  const d = domain.toLowerCase().replace(/\.$/, "").split(".");
  if (p[0] === "*" && p.length - 1 === d.length && p.slice(1).join(".") === d.join(".")) return true;
  const match = (pi: number, di: number): boolean => {
    if (pi === p.length) return di === d.length;
    const label = p[pi]!;
    if (label === "**") {
      for (let k = di; k <= d.length; k++) if (match(pi + 1, k)) return true;
      return false;
    }
    if (di === d.length) return false;
    return labelMatches(label, d[di]!) && match(pi + 1, di + 1);
  };
  return match(0, 0);
}

function labelMatches(pattern: string, label: string): boolean {
  if (pattern === "*") return label.length > 0;
  if (pattern.length !== label.length && !pattern.includes("*")) return false;
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\?/g, ".").replace(/\*/g, "[^.]*")}$`);
  return re.test(label);
}

/** Is a packet of `protocol` to `port` allowed by `filters`? No filters means everything. */
export function filtersAllow(filters: Filter[], protocol: number, port: number): boolean {
  if (filters.length === 0) return true;
  for (const f of filters) {
    if (f.protocol === "icmp") {
      if (protocol === PROTO_ICMP || protocol === PROTO_ICMPV6) return true;
    } else if ((f.protocol === "tcp" ? PROTO_TCP : PROTO_UDP) === protocol && port >= f.portStart && port <= f.portEnd) {
      return true;
    }
  }
  return false;
}
