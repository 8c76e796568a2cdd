// A peer's history across gateway restarts: who it is (stable id, name, keys), whether it is
// connected now, every connection id it had, its audit trail and its persisted log lines. An old
// cid (from an audit row, a log line or a Sentry link) lands here with a note saying so.
import { html } from "hono/html";
import type { AuditRow, CidRow } from "../../src/store/index.ts";
import type { LogLine } from "../../src/telemetry/log.ts";
import type { ConnectionView } from "../../src/telemetry/view.ts";
import { logRows } from "./logs.ts";

import type { Html } from "./layout.ts";

export interface PeerHistoryView {
  peerId: string;
  name: string | null;
  source: "file" | "store";
  /** Every key it has had, newest first. */
  keys: string[];
  /** Its connection now, if any. */
  current: ConnectionView | undefined;
  cids: CidRow[];
  audit: { rows: AuditRow[]; total: number };
  logs: LogLine[];
  /** Set when the page was reached through an old cid. */
  viaCid?: { cid: number; row: CidRow };
  gid?: string;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

export function peerLabel(h: Pick<PeerHistoryView, "name" | "source" | "peerId">): string {
  return h.name ?? (h.source === "file" ? "config file peer" : h.peerId);
}

export function historyPage(h: PeerHistoryView): Html {
  const now = h.current;
  const via = h.viaCid;
  return html`<h1>History of ${peerLabel(h)} <span class="mono muted">${h.peerId}</span></h1>
${via ? html`<p class="notice" data-testid="old-cid" role="status">Connection ${via.cid} is from an earlier run${via.row.gid !== h.gid ? html` of gateway <span class="mono">${via.row.gid}</span>` : ""}: it was this peer's from ${iso(via.row.firstSeen)} to ${iso(via.row.lastSeen)}.
${now ? html`Its connection now is <a href="/connections/${now.cid}" data-testid="current-connection">connection ${now.cid}</a>.` : html`<strong data-testid="not-connected">It is not connected now.</strong>`}</p>` : ""}
<table><tbody>
<tr><th>stable id</th><td class="mono" data-testid="peer-id">${h.peerId}</td></tr>
<tr><th>name</th><td>${h.name ?? html`<span class="muted">${h.source === "file" ? "(config file peer: no name)" : "—"}</span>`}</td></tr>
<tr><th>source</th><td>${h.source === "file" ? "config file" : html`admin (<a href="/peers/${encodeURIComponent(h.peerId)}">edit</a>)`}</td></tr>
<tr><th>public key</th><td class="mono">${h.keys[0] ?? "—"}${h.keys.length > 1 ? html`<div class="muted">earlier: ${h.keys.slice(1).join(", ")}</div>` : ""}</td></tr>
<tr><th>now</th><td>${now ? html`<a href="/connections/${now.cid}" data-testid="now-connection">connection ${now.cid}</a> <span class="pill ${now.state}">${now.state}</span>` : html`<span data-testid="now-not-connected">not connected</span>`}</td></tr>
</tbody></table>
<h2>Connections</h2>
${h.cids.length === 0 ? html`<p class="empty">No connection id recorded yet.</p>` : html`<table id="cid-rows"><thead><tr><th>cid</th><th>gateway (gid)</th><th>first seen</th><th>last seen</th><th></th></tr></thead><tbody>
${h.cids.map((r) => html`<tr data-cid="${r.cid}"><td><a href="/connections/${r.cid}">${r.cid}</a></td><td class="mono">${r.gid}</td><td class="mono">${iso(r.firstSeen)}</td><td class="mono">${iso(r.lastSeen)}</td>
<td>${now?.cid === r.cid ? html`<span class="pill connected">current</span>` : ""}</td></tr>`)}</tbody></table>`}
<h2>Audit trail</h2><p><a href="/audit?peer=${encodeURIComponent(h.peerId)}" data-testid="audit-link">all ${h.audit.total} events in the audit log</a></p>
${h.audit.rows.length === 0 ? html`<p class="empty">No audit events for this peer.</p>` : html`<table id="history-audit"><thead><tr><th>time</th><th>actor</th><th>action</th><th>cid</th><th>reason</th></tr></thead><tbody>
${h.audit.rows.map((r) => html`<tr data-action="${r.action}"><td class="mono">${iso(r.ts)}</td><td>${r.actor}</td><td>${r.action}</td><td>${r.cid === null ? "" : html`<a href="/connections/${r.cid}">${r.cid}</a>`}</td><td>${r.reason ?? ""}</td></tr>`)}</tbody></table>`}
<h2>Logs</h2><p class="muted">Warnings, errors and connection lines are kept across restarts; the rest only while in memory.</p>
<table id="history-logs"><thead><tr><th>ts</th><th>level</th><th>target</th><th>message</th></tr></thead><tbody>${logRows(h.logs)}</tbody></table>`;
}

export function unknownCidPage(cid: number, retentionNote: string): Html {
  return html`<h1>Connection ${cid}</h1><p class="empty" data-testid="unknown-cid">No peer ever had connection id ${cid} on this gateway, as far as its records go (${retentionNote}).
Connection ids are new at each start: search the <a href="/audit?cid=${cid}">audit log</a> or the <a href="/logs?cid=${cid}">logs</a> for it.</p>`;
}
