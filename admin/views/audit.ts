// Audit: who changed what, paged and filtered.
import { html } from "hono/html";
import type { AuditRow } from "../../src/store/index.ts";
import type { Html } from "./layout.ts";

export function auditPage(rows: AuditRow[], total: number, page: number, pageSize: number, q: Record<string, string>): Html {
  const qs = (extra: Record<string, string>) => new URLSearchParams({ ...q, ...extra }).toString();
  const pages = Math.max(1, Math.ceil(total / pageSize));
  return html`<h1>Audit</h1><form method="get" action="/audit">action <input name="action" value="${q.action ?? ""}"> actor <input name="actor" value="${q.actor ?? ""}">
<button>Filter</button> <a href="/audit.csv?${qs({})}">Export CSV</a></form>
<table><thead><tr><th>time</th><th>actor</th><th>action</th><th>subject</th><th>cid</th><th>change</th><th>reason</th></tr></thead><tbody>
${rows.map((r) => html`<tr data-action="${r.action}"><td class="mono">${new Date(r.ts).toISOString()}</td><td>${r.actor}</td><td>${r.action}</td><td class="mono">${r.subject ?? ""}</td>
<td>${r.cid ?? ""}</td><td class="mono muted">${r.before ? `before ${r.before}` : ""} ${r.after ? `after ${r.after}` : ""}</td><td>${r.reason ?? ""}</td></tr>`)}</tbody></table>
<p>Page ${page} of ${pages} (${total} events) ${page > 1 ? html`<a href="/audit?${qs({ page: String(page - 1) })}">previous</a>` : ""} ${page < pages ? html`<a href="/audit?${qs({ page: String(page + 1) })}">next</a>` : ""}</p>`;
}

