// Just enough of the DNS wire format (RFC 1035, RFC 3596) for the gateway's resolver: read the
// question of a query, and write an answer with A/AAAA records or an error code. Strict: a
// malformed query is refused with the reason, never half-read.

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const CLASS_IN = 1;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_REFUSED = 5;

export interface DnsQuestion {
  id: number;
  /** Lower-case, without the trailing dot. */
  name: string;
  qtype: number;
  qclass: number;
  /** Flags of the query (RD is echoed). */
  flags: number;
  /** Where the question section ends, for copying it into the answer. */
  questionEnd: number;
}

export function parseQuery(msg: Uint8Array): DnsQuestion | string {
  if (msg.length < 12) return "shorter than a DNS header";
  const flags = (msg[2]! << 8) | msg[3]!;
  if (flags & 0x8000) return "is a response, not a query";
  if ((flags >> 11) & 0xf) return "opcode is not QUERY";
  const qd = (msg[4]! << 8) | msg[5]!;
  if (qd !== 1) return `has ${qd} questions (exactly 1 supported)`;
  const q = readQuestion(msg);
  if (typeof q === "string") return q;
  return { id: (msg[0]! << 8) | msg[1]!, name: q.name, qtype: q.qtype, qclass: q.qclass, flags, questionEnd: q.end };
}

/**
 * The one question of a message (queries and responses alike): an uncompressed name of plain
 * labels, then type and class. `end` is where the question section ends.
 */
function readQuestion(msg: Uint8Array): { name: string; qtype: number; qclass: number; end: number } | string {
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    if (at >= msg.length) return "question name runs past the message";
    const len = msg[at]!;
    if (len === 0) {
      at++;
      break;
    }
    if (len & 0xc0) return "compressed name in the question";
    if (at + 1 + len > msg.length) return "label runs past the message";
    // A dot inside a label would make "a.b" + "c" read as the three labels a.b.c: a name that
    // is not the one asked could then match a resource pattern (or pass for the question asked).
    if (msg.subarray(at + 1, at + 1 + len).includes(0x2e)) return "label contains a dot";
    labels.push(new TextDecoder().decode(msg.subarray(at + 1, at + 1 + len)).toLowerCase());
    at += 1 + len;
    if (at - 12 > 255) return "name longer than 255 bytes";
  }
  if (at + 4 > msg.length) return "question type/class missing";
  return { name: labels.join("."), qtype: (msg[at]! << 8) | msg[at + 1]!, qclass: (msg[at + 2]! << 8) | msg[at + 3]!, end: at + 4 };
}

/** An answer to `query` (the original bytes) with `addresses` of the asked type, TTL in seconds. */
export function buildAnswer(query: Uint8Array, q: DnsQuestion, addresses: Uint8Array[], ttl: number, rcode = 0): Uint8Array {
  const question = query.subarray(12, q.questionEnd);
  const rrs = addresses.filter((a) => (q.qtype === TYPE_A ? a.length === 4 : q.qtype === TYPE_AAAA ? a.length === 16 : false));
  const out = new Uint8Array(12 + question.length + rrs.reduce((n, a) => n + 12 + a.length, 0));
  out[0] = q.id >> 8;
  out[1] = q.id & 0xff;
  // QR, AA, RD copied, RA; rcode.
  const flags = 0x8000 | 0x0400 | (q.flags & 0x0100) | 0x0080 | (rcode & 0xf);
  out[2] = flags >> 8;
  out[3] = flags & 0xff;
  out[5] = 1;
  out[7] = rrs.length;
  out.set(question, 12);
  let at = 12 + question.length;
  for (const a of rrs) {
    out[at] = 0xc0; // pointer to the name in the question
    out[at + 1] = 12;
    out[at + 3] = a.length === 4 ? TYPE_A : TYPE_AAAA;
    out[at + 5] = CLASS_IN;
    out[at + 6] = (ttl >>> 24) & 0xff;
    out[at + 7] = (ttl >>> 16) & 0xff;
    out[at + 8] = (ttl >>> 8) & 0xff;
    out[at + 9] = ttl & 0xff;
    out[at + 11] = a.length;
    out.set(a, at + 12);
    at += 12 + a.length;
  }
  return out;
}

/** A query for `name` (tests and tools). */
export function buildQuery(id: number, name: string, qtype: number): Uint8Array {
  const labels = name.replace(/\.$/, "").split(".").map((l) => new TextEncoder().encode(l));
  const out = new Uint8Array(12 + labels.reduce((n, l) => n + 1 + l.length, 0) + 1 + 4);
  out[0] = id >> 8;
  out[1] = id & 0xff;
  out[2] = 0x01; // RD
  out[5] = 1;
  let at = 12;
  for (const l of labels) {
    out[at] = l.length;
    out.set(l, at + 1);
    at += 1 + l.length;
  }
  at++;
  out[at + 1] = qtype;
  out[at + 3] = CLASS_IN;
  return out;
}

/** The A/AAAA addresses in an answer (tests and tools). */
export function answerAddresses(msg: Uint8Array): { rcode: number; addresses: Uint8Array[] } {
  const rcode = msg[3]! & 0xf;
  const an = (msg[6]! << 8) | msg[7]!;
  let at = 12;
  while (msg[at] !== 0) at += 1 + msg[at]!;
  at += 5;
  const addresses: Uint8Array[] = [];
  for (let i = 0; i < an; i++) {
    at += (msg[at]! & 0xc0) === 0xc0 ? 2 : (() => { let j = at; while (msg[j] !== 0) j += 1 + msg[j]!; return j + 1 - at; })();
    const type = (msg[at]! << 8) | msg[at + 1]!;
    const len = (msg[at + 8]! << 8) | msg[at + 9]!;
    if (type === TYPE_A || type === TYPE_AAAA) addresses.push(msg.slice(at + 10, at + 10 + len));
    at += 10 + len;
  }
  return { rcode, addresses };
}

export interface DnsResponse {
  id: number;
  rcode: number;
  /** The question the response answers (lower-case name, no trailing dot); absent if it has none. */
  question?: { name: string; qtype: number; qclass: number };
  /** IN-class A and AAAA records of the answer section (CNAME targets included: a resolver's answer). */
  addresses: Uint8Array[];
}

/**
 * Reads a response from an upstream resolver. Strict where it matters for the forwarder (header,
 * exactly one uncompressed question), bounds-checked everywhere: every length is checked against
 * the message before it is used, so a hostile upstream gets an error string, never a wrong read.
 */
export function parseResponse(msg: Uint8Array): DnsResponse | string {
  if (msg.length < 12) return "shorter than a DNS header";
  const flags = (msg[2]! << 8) | msg[3]!;
  if (!(flags & 0x8000)) return "is a query, not a response";
  const qd = (msg[4]! << 8) | msg[5]!;
  const an = (msg[6]! << 8) | msg[7]!;
  const id = (msg[0]! << 8) | msg[1]!;
  const rcode = flags & 0xf;
  if (qd > 1) return `has ${qd} questions (at most 1 supported)`;
  let at = 12;
  let question: DnsResponse["question"];
  if (qd === 1) {
    const q = readQuestion(msg);
    if (typeof q === "string") return q;
    question = { name: q.name, qtype: q.qtype, qclass: q.qclass };
    at = q.end;
  }
  const addresses: Uint8Array[] = [];
  for (let i = 0; i < an; i++) {
    // Skip the owner name: labels ending in a zero byte or a 2-byte pointer.
    for (let hops = 0; ; hops++) {
      if (at >= msg.length || hops > 128) return `answer ${i} name runs past the message`;
      const len = msg[at]!;
      if (len === 0) {
        at++;
        break;
      }
      if ((len & 0xc0) === 0xc0) {
        at += 2;
        break;
      }
      if (len & 0xc0) return `answer ${i} name has an unknown label type`;
      at += 1 + len;
    }
    if (at + 10 > msg.length) return `answer ${i} header runs past the message`;
    const type = (msg[at]! << 8) | msg[at + 1]!;
    const cls = (msg[at + 2]! << 8) | msg[at + 3]!;
    const rdlen = (msg[at + 8]! << 8) | msg[at + 9]!;
    at += 10;
    if (at + rdlen > msg.length) return `answer ${i} data runs past the message`;
    if (cls === CLASS_IN && ((type === TYPE_A && rdlen === 4) || (type === TYPE_AAAA && rdlen === 16))) addresses.push(msg.slice(at, at + rdlen));
    at += rdlen;
  }
  return { id, rcode, question, addresses };
}
