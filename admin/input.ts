// Untrusted input at the admin boundary: query values, route params and JSON bodies. One parser per
// kind, each throwing InputError naming the field (and the value, capped) — the app's onError turns
// that into a 400, so no handler does Number(q.limit) and hopes.
import type { Context } from "hono";
import { z } from "zod";

/** How much of a caller's value an error message repeats. */
export const ECHO_MAX = 64;

export class InputError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = "InputError";
  }
}

/** A value as an error message quotes it: JSON-quoted, at most ECHO_MAX characters. */
export function echo(value: unknown): string {
  const s = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return JSON.stringify(s.length > ECHO_MAX ? `${s.slice(0, ECHO_MAX)}…` : s);
}

/** Caps every quoted value in a message from deeper layers (which may repeat a whole field). */
export function capQuoted(message: string): string {
  const capped = message.replace(/"((?:[^"\\]|\\.){64})(?:[^"\\]|\\.)+"/g, '"$1…"');
  return capped.length > 512 ? `${capped.slice(0, 512)}…` : capped;
}

type Query = Record<string, string | undefined>;

/** A whole number in [min, max] written in plain digits (no sign, exponent or fraction). */
export function intParam(q: Query, name: string, range: { min: number; max: number }): number | undefined {
  const raw = q[name];
  if (raw === undefined || raw === "") return undefined;
  if (!/^\d{1,16}$/.test(raw) || Number(raw) < range.min || Number(raw) > range.max) {
    throw new InputError(name, `${echo(raw)} is not a whole number from ${range.min} to ${range.max}`);
  }
  return Number(raw);
}

/** Free text, at most `max` characters. */
export function textParam(q: Query, name: string, max = 200): string | undefined {
  const raw = q[name];
  if (raw === undefined || raw === "") return undefined;
  if (raw.length > max) throw new InputError(name, `${echo(raw)} is longer than ${max} characters`);
  return raw;
}

/** One of a fixed set of words. */
export function enumParam<T extends string>(q: Query, name: string, values: readonly T[]): T | undefined {
  const raw = q[name];
  if (raw === undefined || raw === "") return undefined;
  if (!(values as readonly string[]).includes(raw)) throw new InputError(name, `${echo(raw)} is not one of ${values.join(", ")}`);
  return raw as T;
}

/** An ISO timestamp (kept as text: log lines compare timestamps as text). */
export function timeParam(q: Query, name: string): string | undefined {
  const raw = textParam(q, name, 40);
  if (raw !== undefined && Number.isNaN(Date.parse(raw))) throw new InputError(name, `${echo(raw)} is not an ISO timestamp`);
  return raw;
}

/** The request body as a JSON object (not null, an array or a scalar). */
export async function jsonObject(c: Context): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new InputError("body", "is not JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new InputError("body", `must be a JSON object, not ${body === null ? "null" : Array.isArray(body) ? "an array" : typeof body}`);
  return body as Record<string, unknown>;
}

/** A strict zod parse: unknown fields are refused, the first issue becomes an InputError. */
export function parseStrict<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.path.join(".");
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    throw new InputError(path ? `${path}.${key}` : key, "is not a known field");
  }
  throw new InputError(path || "body", issue.message);
}

/** Only the given top-level fields may appear (their values are validated elsewhere). */
export function knownFields(fields: readonly string[]) {
  return z.strictObject(Object.fromEntries(fields.map((f) => [f, z.unknown().optional()])));
}

/** capQuoted for each message of a field → message map. */
export function capFields(fields: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).map(([k, m]) => [k, capQuoted(m)]));
}

/** What a list page's ?q=&sort=&dir= asked for; `problems` says in words what fell back to a default. */
export interface ListQuery<S extends string> {
  q: string;
  sort: S;
  dir: "asc" | "desc";
  problems: string[];
}

const LIST_FIELDS: Record<string, string> = { q: "Search", sort: "Sort", dir: "Sort direction" };

/**
 * Reads a list page's search and sort. A page is browsed, not scripted: a value not understood
 * falls back to the default and is said on the page instead of failing with a 400.
 */
export function listQuery<S extends string>(query: Query, sorts: readonly S[], defaultSort: S, defaultDir: (sort: S) => "asc" | "desc"): ListQuery<S> {
  const problems: string[] = [];
  const read = <T>(f: () => T | undefined, fallback: T): T => {
    try {
      return f() ?? fallback;
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      problems.push(`${LIST_FIELDS[err.field] ?? err.field}: ${err.message.slice(err.field.length + 2)} — showing the default instead.`);
      return fallback;
    }
  };
  const q = read(() => textParam(query, "q", 100)?.trim(), "");
  const sort = read(() => enumParam(query, "sort", sorts), defaultSort);
  const dir = read(() => enumParam(query, "dir", ["asc", "desc"] as const), defaultDir(sort));
  return { q, sort, dir, problems };
}
