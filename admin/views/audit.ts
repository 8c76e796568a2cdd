// Audit: who changed what, paged and filtered. A row shows a one-line summary of the change; the
// full before/after is behind <details>, so the page fits the viewport however big a row is.
import { html } from "hono/html";
import type { AuditRow } from "../../src/store/index.ts";
import { cidLink, utcTime, type Html } from "./layout.ts";

const VALUE_MAX = 32;
const SUMMARY_MAX = 3;

function parse(json: string | null): unknown {
  if (json === null) return undefined;
  try {
    return JSON.parse(json);
  } catch {
    return json;
  }
}

function short(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v) ?? "null";
  return s.length > VALUE_MAX ? `${s.slice(0, VALUE_MAX - 1)}…` : s;
}

/** Fields an operator looks for first; ids and timestamps repeat the row's own columns. */
const FIRST = ["name", "allowedIps", "enabled", "expiresAt", "endpoint", "authorized", "expires_at"];
const SKIP = new Set(["id", "createdAt", "updatedAt"]);
const rank = (k: string) => (FIRST.includes(k) ? FIRST.indexOf(k) : FIRST.length);
const fields = (o: Record<string, unknown>) => Object.entries(o).filter(([k]) => !SKIP.has(k)).sort((a, b) => rank(a[0]) - rank(b[0]));

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** One line: the fields that changed ("enabled: true → false"), or what was set or removed. */
export function changeSummary(before: string | null, after: string | null): string {
  const b = parse(before);
  const a = parse(after);
  const cap = (parts: string[]) => (parts.length > SUMMARY_MAX ? [...parts.slice(0, SUMMARY_MAX), `+${parts.length - SUMMARY_MAX} more`] : parts).join("; ");
  if (isObject(b) && isObject(a)) {
    const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])].filter((k) => JSON.stringify(b[k]) !== JSON.stringify(a[k]) && !SKIP.has(k)).sort((x, y) => rank(x) - rank(y));
    return keys.length ? cap(keys.map((k) => `${k}: ${short(b[k])} → ${short(a[k])}`)) : "no field changed";
  }
  if (isObject(a)) return `set ${cap(fields(a).map(([k, v]) => `${k}=${short(v)}`))}`;
  if (isObject(b)) return `removed ${cap(fields(b).map(([k, v]) => `${k}=${short(v)}`))}`;
  if (a !== undefined || b !== undefined) return `${b !== undefined ? short(b) : "—"} → ${a !== undefined ? short(a) : "—"}`;
  return "";
}

function pretty(json: string | null): string {
  const v = parse(json);
  return typeof v === "string" ? v : JSON.stringify(v, null, 2);
}

/**
 * Where a row's subject lives: a peer's rows (peer.*, connection.*, capture.*) share its public
 * key as subject and lead to its history (every cid it had, across restarts) and its whole trail.
 */
function subjectCell(r: AuditRow): Html {
  if (!r.subject) return html``;
  if (/^(peer|connection|capture)\./.test(r.action)) {
    return html`<a class="key" href="/history/${encodeURIComponent(r.subject)}">${r.subject}</a> <a class="muted small" href="/audit?peer=${encodeURIComponent(r.subject)}" title="this peer's whole audit trail">trail</a>`;
  }
  const trail = html` <a class="muted small" href="/audit?subject=${encodeURIComponent(r.subject)}" title="every event with this subject">trail</a>`;
  if (r.action.startsWith("resource.") && r.action !== "resource.deleted") return html`<a href="/resources#${encodeURIComponent(r.subject)}">${r.subject}</a>${trail}`;
  return html`${r.subject}${trail}`;
}

function changeCell(r: AuditRow): Html {
  if (r.before === null && r.after === null) return html``;
  return html`<details><summary>${changeSummary(r.before, r.after)}</summary>
${r.before !== null ? html`<div class="muted small">before</div><pre>${pretty(r.before)}</pre>` : ""}${r.after !== null ? html`<div class="muted small">after</div><pre>${pretty(r.after)}</pre>` : ""}</details>`;
}

/**
 * `gateways`: the known gateways (their gid select; with more than one, a gateway column says
 * whose each row is, by name). `self`: this gateway's gid — another gateway's cid is not linked,
 * since /connections/:cid would look it up among this gateway's.
 */
export function auditPage(rows: AuditRow[], total: number, page: number, pageSize: number, q: Record<string, string>, gateways: { gid: string; name: string }[] = [], self?: string): Html {
  const qs = (extra: Record<string, string>) => new URLSearchParams({ ...q, ...extra }).toString();
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const filtered = Object.keys(q).some((k) => k !== "page" && q[k]);
  const names = new Map(gateways.map((g) => [g.gid, g.name]));
  const several = gateways.length > 1;
  return html`<h1>Audit</h1><form method="get" action="/audit" class="search">action <input name="action" size="14" value="${q.action ?? ""}"> actor <input name="actor" size="14" value="${q.actor ?? ""}">
subject <input name="subject" size="20" value="${q.subject ?? ""}"> cid <input name="cid" size="8" value="${q.cid ?? ""}">
${gateways.length ? html`gateway <select name="gid"><option value="">every gateway</option>${gateways.map((g) => html`<option value="${g.gid}"${g.gid === q.gid ? html` selected` : ""}>${g.name} (${g.gid.slice(0, 8)})</option>`)}${q.gid && !names.has(q.gid) ? html`<option value="${q.gid}" selected>${q.gid}</option>` : ""}</select>` : ""}
<button>Filter</button>${filtered ? html` <a href="/audit">clear</a>` : ""} · <a href="/audit.csv?${qs({})}">Export CSV</a></form>
${rows.length === 0
    ? html`<p class="empty" data-testid="audit-empty">${filtered ? "No audit event matches this filter." : "No audit events yet: logins, peer and resource changes and connections are recorded here."}</p>`
    : html`<table class="audit"><thead><tr><th class="col-time">time</th><th class="col-actor">actor</th><th class="col-action">action</th><th class="col-subject">subject</th><th class="col-cid">cid</th><th class="col-change">change</th><th class="col-reason">reason</th>${several ? html`<th class="col-gateway">gateway</th>` : ""}</tr></thead><tbody>
${rows.map((r) => html`<tr data-action="${r.action}" data-gid="${r.gid ?? ""}"><td>${utcTime(r.ts)}</td><td>${r.actor}</td><td>${r.action}</td><td class="mono subject">${subjectCell(r)}</td>
<td>${r.cid === null ? "" : self && r.gid && r.gid !== self ? String(r.cid) : cidLink(r.cid)}</td><td class="change">${changeCell(r)}</td><td>${r.reason ?? ""}</td>${several ? html`<td><a href="/gateways#gw-${r.gid ?? ""}">${r.gid ? (names.get(r.gid) ?? r.gid.slice(0, 8)) : ""}</a></td>` : ""}</tr>`)}</tbody></table>`}
<p>Page ${page} of ${pages} (${total} events) ${page > 1 ? html`<a href="/audit?${qs({ page: String(page - 1) })}">previous</a>` : ""} ${page < pages ? html`<a href="/audit?${qs({ page: String(page + 1) })}">next</a>` : ""}</p>`;
}
