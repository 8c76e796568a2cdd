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
    const pattern = parseDnsPattern(v.address);
    return { type: "dns", id: v.id, name: v.name || pattern, pattern, filters: v.filters };
  }
  return { type: "internet", id: v.id, name: v.name, filters: v.filters };
}

/**
 * Limits on a DNS resource pattern, checked when the resource is created. Matching is linear in
 * (pattern labels × name labels) anyway; the caps keep that product, and what a pattern can ask
 * of the packet thread per query, small and predictable. 253 and 63 are RFC 1035's limits for a
 * name and a label; real resource patterns have a handful of labels and one `**` at most.
 */
export const MAX_PATTERN_LENGTH = 253;
export const MAX_PATTERN_LABELS = 32;
export const MAX_PATTERN_LABEL_LENGTH = 63;
export const MAX_PATTERN_DOUBLE_STARS = 2;

const PATTERN_SHAPE = /^(\*\*\.|\*\.)?([a-z0-9?*-]+\.)*[a-z0-9-]+$/;

/** A DNS resource's `address`, normalised (lower case, no trailing dot); throws naming the value and the limit. */
export function parseDnsPattern(address: string): string {
  const shown = JSON.stringify(address.length > 64 ? `${address.slice(0, 64)}…` : address);
  const pattern = address.trim().toLowerCase().replace(/\.$/, "");
  if (pattern.length > MAX_PATTERN_LENGTH) {
    throw new Error(`resource address: ${shown} is ${pattern.length} characters long (at most ${MAX_PATTERN_LENGTH})`);
  }
  if (!PATTERN_SHAPE.test(pattern)) {
    throw new Error(`resource address: ${shown} is not a domain or wildcard pattern (e.g. app.example.com, *.example.com, **.example.com)`);
  }
  const labels = pattern.split(".");
  if (labels.length > MAX_PATTERN_LABELS) {
    throw new Error(`resource address: ${shown} has ${labels.length} labels (at most ${MAX_PATTERN_LABELS})`);
  }
  const long = labels.find((l) => l.length > MAX_PATTERN_LABEL_LENGTH);
  if (long) throw new Error(`resource address: ${shown} has a label of ${long.length} characters (at most ${MAX_PATTERN_LABEL_LENGTH})`);
  const doubleStars = labels.filter((l) => l === "**").length;
  if (doubleStars > MAX_PATTERN_DOUBLE_STARS) {
    throw new Error(`resource address: ${shown} has ${doubleStars} "**" labels (at most ${MAX_PATTERN_DOUBLE_STARS})`);
  }
  const bad = labels.find((l) => l.includes("**") && l !== "**");
  if (bad) throw new Error(`resource address: ${shown} has "**" inside the label "${bad.slice(0, 64)}" ("**" stands for whole labels only)`);
  return pattern;
}

/** Counts the matcher's work (tests bound it; the matcher never reads it). */
export interface MatchMeter {
  steps: number;
}

/**
 * Does `domain` match `pattern`? As Firezone's gateway: `*` stands for one label (and a leading
 * `*.` also matches the apex: `*.example.com` matches `example.com`), `**` for any number of
 * labels including none, `?` for one character (never a dot); inside a label `*` stands for any
 * run of characters.
 *
 * Runs on the packet thread for every DNS query, so it must not backtrack: a set of reachable
 * name positions is carried across the pattern's labels (an NFA simulation), which costs
 * (pattern labels + 1) × (name labels + 1) cells plus one label-glob per cell, each at most
 * (pattern label + 1) × (name label + 1) steps. A recursive matcher took 42 s on twelve `**`.
 */
export function domainMatches(pattern: string, domain: string, meter?: MatchMeter): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, "").split(".");
  const d = domain.toLowerCase().replace(/\.$/, "").split(".");
  const n = d.length;
  // at[k]: the pattern labels seen so far can consume exactly the first k name labels.
  let at = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);
  at[0] = 1;
  let steps = 0;
  for (let pi = 0; pi < p.length; pi++) {
    const label = p[pi]!;
    let any = 0;
    if (label === "**") {
      // Any number of labels: every position at or after a reachable one is reachable.
      let seen = 0;
      for (let k = 0; k <= n; k++) {
        seen |= at[k]!;
        next[k] = seen;
        any |= seen;
      }
      steps += n + 1;
    } else {
      // A leading `*` also stands for no label at all (the apex).
      const optional = pi === 0 && label === "*";
      next[0] = optional ? at[0]! : 0;
      any |= next[0]!;
      for (let k = 1; k <= n; k++) {
        let v = optional ? at[k]! : 0;
        if (!v && at[k - 1]) {
          const g = globLabel(label, d[k - 1]!);
          steps += g.steps;
          v = g.match ? 1 : 0;
        }
        next[k] = v;
        any |= v;
      }
      steps += n + 1;
    }
    [at, next] = [next, at];
    if (!any) break; // nothing reachable: no later label can match
  }
  if (meter) meter.steps += steps;
  return at[n] === 1;
}

const globResult = { match: false, steps: 0 };

/**
 * One pattern label against one name label: `?` is one character, `*` any run (`*` alone needs
 * a non-empty label). The classic greedy match with one resume point: when a later `*` is met
 * the earlier one never needs revisiting, so it is O(|pattern| × |label|), no backtracking tree.
 */
function globLabel(pattern: string, label: string): typeof globResult {
  const r = globResult;
  r.steps = 0;
  if (pattern === "*") {
    r.steps = 1;
    r.match = label.length > 0;
    return r;
  }
  if (!pattern.includes("*") && !pattern.includes("?")) {
    r.steps = Math.min(pattern.length, label.length) + 1;
    r.match = pattern === label;
    return r;
  }
  let pi = 0;
  let li = 0;
  let starAt = -1; // pattern index after the last `*`
  let resumeAt = 0; // label index that `*` has consumed up to
  for (;;) {
    r.steps++;
    if (li < label.length) {
      const c = pattern.charCodeAt(pi);
      if (pi < pattern.length && c !== 42 /* * */ && (c === 63 /* ? */ || c === label.charCodeAt(li))) {
        pi++;
        li++;
        continue;
      }
      if (pi < pattern.length && c === 42) {
        starAt = ++pi;
        resumeAt = li;
        continue;
      }
      if (starAt >= 0) {
        // Let the last `*` swallow one more character and retry from just after it.
        pi = starAt;
        li = ++resumeAt;
        continue;
      }
      r.match = false;
      return r;
    }
    while (pi < pattern.length && pattern.charCodeAt(pi) === 42) (pi++, r.steps++);
    r.match = pi === pattern.length;
    return r;
  }
}

/** `matchingFilter`'s answers besides a rule's index. */
export const NO_FILTERS = -1;
export const NO_FILTER_MATCHES = -2;

/**
 * Which of `filters` lets a packet of `protocol` to `port` through: the first matching rule's
 * index, NO_FILTERS when there are none (everything passes), NO_FILTER_MATCHES when none does.
 */
export function matchingFilter(filters: Filter[], protocol: number, port: number): number {
  if (filters.length === 0) return NO_FILTERS;
  for (let i = 0; i < filters.length; i++) {
    const f = filters[i]!;
    if (f.protocol === "icmp") {
      if (protocol === PROTO_ICMP || protocol === PROTO_ICMPV6) return i;
    } else if ((f.protocol === "tcp" ? PROTO_TCP : PROTO_UDP) === protocol && port >= f.portStart && port <= f.portEnd) {
      return i;
    }
  }
  return NO_FILTER_MATCHES;
}

/** Is a packet of `protocol` to `port` allowed by `filters`? No filters means everything. */
export function filtersAllow(filters: Filter[], protocol: number, port: number): boolean {
  return matchingFilter(filters, protocol, port) !== NO_FILTER_MATCHES;
}

/** A filter as the config file and the admin write it: `tcp/22`, `udp/5000-5100`, `icmp`. */
export function filterText(f: Filter): string {
  return f.protocol === "icmp" ? "icmp" : `${f.protocol}/${f.portStart}${f.portEnd !== f.portStart ? `-${f.portEnd}` : ""}`;
}
