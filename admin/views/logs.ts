// Logs and Errors: the log ring's lines, filtered, newest first.
import { html, raw } from "hono/html";
import type { LogLine } from "../../src/telemetry/log.ts";
import { cidLink, utcTime, type Html } from "./layout.ts";

/** A log line's fields as `k=v`, the cid linked to its connection. */
function fieldText(fields: Record<string, unknown>): Html {
  return html`${Object.entries(fields).map(([k, v]) =>
    k === "cid" && typeof v === "number" ? html`cid=${cidLink(v)} ` : html`${k}=${typeof v === "string" ? v : JSON.stringify(v)} `)}`;
}

export function logRows(lines: LogLine[], empty = "No matching log lines."): Html {
  if (lines.length === 0) return html`<tr><td colspan="4" class="empty">${empty}</td></tr>`;
  return html`${lines.map((l) => {
    const { ts, level, target, msg, ...fields } = l;
    return html`<tr class="level-${level}"${typeof fields.cid === "number" ? html` data-cid="${fields.cid}"` : ""}><td class="mono ts">${utcTime(ts, true)}</td><td>${level}</td><td>${target}</td>
<td>${msg} <span class="mono muted">${fieldText(fields)}</span></td></tr>`;
  })}`;
}

export interface LogFilterForm {
  cid?: string;
  gid?: string;
  rid?: string;
  level?: string;
  target?: string;
}

/** What an empty log table says: a filter that matches nothing is not an empty log. */
export function logsEmpty(f: LogFilterForm): string {
  return Object.values(f).some((v) => v) ? "No log line matches this filter." : "No log lines yet.";
}

export function logsPage(f: LogFilterForm, lines: LogLine[]): Html {
  const qs = new URLSearchParams(Object.entries(f).filter(([, v]) => v) as [string, string][]).toString();
  return html`<h1>Logs</h1><form method="get" action="/logs" id="log-filter">
cid <input name="cid" size="9" value="${f.cid ?? ""}"> gid <input name="gid" size="9" value="${f.gid ?? ""}"> rid <input name="rid" size="9" value="${f.rid ?? ""}">
level <select name="level">${["", "trace", "debug", "info", "warn", "error"].map((l) => html`<option value="${l}"${l === (f.level ?? "") ? raw(" selected") : ""}>${l || "any"}</option>`)}</select>
target <input name="target" size="10" value="${f.target ?? ""}"> <button type="submit">Filter</button></form>
<p class="muted">Live tail: newest first, refreshed every 2 s.</p>
<table><thead><tr><th>ts</th><th>level</th><th>target</th><th>message</th></tr></thead>
<tbody id="log-rows" hx-get="/logs/rows?${qs}" hx-trigger="every 2s" hx-swap="innerHTML">${logRows(lines, logsEmpty(f))}</tbody></table>`;
}

export function errorsPage(lines: LogLine[]): Html {
  return html`<h1>Errors</h1><p class="muted">Recent warnings and errors with the context sent to Sentry (when SENTRY_DSN is set).</p>
<table><thead><tr><th>ts</th><th>level</th><th>target</th><th>message</th></tr></thead><tbody>${logRows(lines, "No warnings or errors recorded.")}</tbody></table>`;
}

