// ICE candidates in the SDP `candidate:` attribute form the portal relays between client and gateway
// (RFC 8839 §5.1, as str0m writes them: `candidate:<foundation> <component> <transport> <priority>
// <address> <port> typ <type> [raddr <address> rport <port>]`). Whatever a peer sends is refused
// here with a reason naming the field, so the agent only ever sees candidates it can pair.
import { formatIp, parseIPv4, parseIPv6 } from "../ip/address.ts";

export type CandidateType = "host" | "srflx" | "prflx" | "relay";

export interface Candidate {
  foundation: string;
  /** 1: RTP. Firezone has one component; anything else is refused at parse time. */
  component: number;
  transport: "udp";
  priority: number;
  /** Canonical text form (formatIp), so equal addresses compare equal as strings. */
  address: string;
  port: number;
  type: CandidateType;
  relatedAddress?: string;
  relatedPort?: number;
}

export type CandidateParse = { ok: true; candidate: Candidate } | { ok: false; reason: string };

/** RFC 8445 §5.1.2.2 recommended type preferences. */
export const TYPE_PREFERENCE: Record<CandidateType, number> = { host: 126, prflx: 110, srflx: 100, relay: 0 };

/**
 * RFC 8445 §5.1.2.1: priority = 2^24·type + 2^8·local + (256 − component). `localPreference` ranks
 * candidates of one type (e.g. IPv6 over IPv4, one interface over another), 0–65535.
 */
export function candidatePriority(type: CandidateType, localPreference = 65535, component = 1): number {
  return TYPE_PREFERENCE[type] * 2 ** 24 + localPreference * 2 ** 8 + (256 - component);
}

/** Canonical text of an IPv4/IPv6 literal, or undefined (hostnames, mDNS `.local` names). */
export function canonicalAddress(text: string): string | undefined {
  const bytes = parseIPv4(text) ?? parseIPv6(text);
  return bytes ? formatIp(bytes) : undefined;
}

const MAX_PRIORITY = 2 ** 32 - 1;
const MAX_ATTRIBUTE_CHARS = 512; // a candidate line is ~100 chars; anything huge is not one

function parsePort(field: string, text: string | undefined): number | string {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return `${field}: "${text ?? ""}" is not a port (0–65535)`;
  const port = Number(text);
  return port <= 65535 ? port : `${field}: ${port} is not a port (0–65535)`;
}

/**
 * Parses one candidate attribute; `a=` and `candidate:` prefixes are optional. Extension attributes
 * after the type (`generation 0`, `network-id 1`, `ufrag …`) are ignored, as RFC 8839 asks.
 */
export function parseCandidate(text: string): CandidateParse {
  const fail = (reason: string): CandidateParse => ({ ok: false, reason });
  if (text.length > MAX_ATTRIBUTE_CHARS) return fail(`candidate: ${text.length} characters is not a candidate line (at most ${MAX_ATTRIBUTE_CHARS})`);
  let s = text.trim();
  if (s.startsWith("a=")) s = s.slice(2);
  if (s.startsWith("candidate:")) s = s.slice("candidate:".length);
  const f = s.split(/\s+/);
  if (f.length < 8) return fail(`candidate: "${text}" has ${f.length} fields, expected at least 8 (foundation component transport priority address port typ type)`);
  const [foundation, componentText, transportText, priorityText, addressText, portText, typKeyword, typeText] = f as [string, string, string, string, string, string, string, string];
  if (!/^[A-Za-z0-9+/]{1,32}$/.test(foundation)) return fail(`foundation: "${foundation}" is not 1–32 ice-chars`);
  if (componentText !== "1") return fail(`component: "${componentText}" is not 1 (one component per connection)`);
  if (transportText.toLowerCase() !== "udp") return fail(`transport: "${transportText}" is not UDP (TCP candidates are not supported)`);
  if (!/^\d{1,10}$/.test(priorityText) || Number(priorityText) < 1 || Number(priorityText) > MAX_PRIORITY) {
    return fail(`priority: "${priorityText}" is not 1–${MAX_PRIORITY}`);
  }
  const address = canonicalAddress(addressText);
  if (address === undefined) {
    const why = addressText.endsWith(".local") ? " (mDNS names are not resolved)" : "";
    return fail(`address: "${addressText}" is not an IPv4 or IPv6 address${why}`);
  }
  const port = parsePort("port", portText);
  if (typeof port === "string") return fail(port);
  if (port === 0) return fail("port: 0 cannot receive checks");
  if (typKeyword !== "typ") return fail(`typ: expected "typ" before the type, found "${typKeyword}"`);
  if (typeText !== "host" && typeText !== "srflx" && typeText !== "prflx" && typeText !== "relay") {
    return fail(`type: "${typeText}" is not host, srflx, prflx or relay`);
  }
  const candidate: Candidate = { foundation, component: 1, transport: "udp", priority: Number(priorityText), address, port, type: typeText };
  for (let i = 8; i + 1 < f.length; i += 2) {
    const key = f[i]!;
    const value = f[i + 1]!;
    if (key === "raddr") {
      const related = canonicalAddress(value);
      if (related === undefined) return fail(`raddr: "${value}" is not an IPv4 or IPv6 address`);
      candidate.relatedAddress = related;
    } else if (key === "rport") {
      const rport = parsePort("rport", value);
      if (typeof rport === "string") return fail(rport);
      candidate.relatedPort = rport;
    }
  }
  return { ok: true, candidate };
}

/** The attribute value without `a=`, as Firezone sends it over the portal. */
export function formatCandidate(c: Candidate): string {
  let s = `candidate:${c.foundation} ${c.component} udp ${c.priority} ${c.address} ${c.port} typ ${c.type}`;
  if (c.relatedAddress !== undefined && c.relatedPort !== undefined) s += ` raddr ${c.relatedAddress} rport ${c.relatedPort}`;
  return s;
}

/** Two candidates are the same transport address of the same type (what invalidation matches on). */
export function sameCandidate(a: Candidate, b: Candidate): boolean {
  return a.type === b.type && a.address === b.address && a.port === b.port;
}

export function isIPv4(address: string): boolean {
  return !address.includes(":");
}

/**
 * RFC 8445 §5.1.1.3: the foundation groups candidates of one type, base and server. A stable
 * digest of those fields keeps it short and the same across restarts.
 */
export function foundationOf(type: CandidateType, baseAddress: string, server = ""): string {
  let h = 0x811c9dc5;
  const s = `${type}|${baseAddress}|${server}`;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return String(h % 1_000_000_000);
}

/** A candidate we gather, with its priority computed as RFC 8445 §5.1.2 recommends. */
export function localCandidate(type: CandidateType, address: string, port: number, base?: { address: string; port: number }, localPreference?: number): Candidate {
  const canonical = canonicalAddress(address) ?? address;
  const pref = localPreference ?? (isIPv4(canonical) ? 65535 - 1 : 65535); // IPv6 first, as RFC 8421 leans
  const c: Candidate = {
    foundation: foundationOf(type, base?.address ?? canonical),
    component: 1,
    transport: "udp",
    priority: candidatePriority(type, pref),
    address: canonical,
    port,
    type,
  };
  if (base && type !== "host") {
    c.relatedAddress = canonicalAddress(base.address) ?? base.address;
    c.relatedPort = base.port;
  }
  return c;
}
