// Gateways: every gateway of the deployment (health, version, endpoint, last seen, connected
// peers), then the connections across them as each published them, and the Problems page with
// its gateway filter. Another gateway's rows come from its own process: a row that did not read
// is shown as "unreadable" with why, never dropped in silence.
import { html } from "hono/html";
import type { GatewayRow } from "../../src/store/index.ts";
import { isUnreadable, type LiveConnection } from "../../src/cluster/gateway-presence.ts";
import type { GatewayItem } from "../routes/gateways.ts";
import type { GatewayProblem } from "../routes/problems.ts";
import { ago, cidLink, fmtBytes, utcTime, type Html } from "./layout.ts";

const anchor = (gid: string) => `gw-${gid}`;

function health(g: GatewayItem): Html {
  return g.health === "up"
    ? html`<span class="pill connected" data-health="up">up</span>`
    : html`<span class="pill stale" data-health="stale">stale</span> <span class="small">since ${utcTime(g.stale_since)}</span>`;
}

function gatewayCell(g: Pick<GatewayItem, "gid" | "name" | "self">): Html {
  return html`<a href="#${anchor(g.gid)}">${g.name}</a>${g.self ? html` <span class="muted small">(this one)</span>` : ""}`;
}

function connectionRow(g: GatewayItem, c: LiveConnection, now: number): Html {
  return html`<tr data-gid="${g.gid}" data-cid="${c.cid}"><td>${gatewayCell(g)}</td><td>${g.self ? cidLink(c.cid) : c.cid}</td><td class="key">${c.peer}</td>
<td class="mono">${c.endpoint ?? "—"}${c.path ? html`<br><span class="muted small">${c.path}</span>` : ""}</td><td>${ago(c.last_handshake, now)}</td>
<td>${fmtBytes(c.rx_bytes)}</td><td>${fmtBytes(c.tx_bytes)}</td><td>${c.state ? html`<span class="pill ${c.state}">${c.state.replace("_", " ")}</span>` : "—"}</td></tr>`;
}

export function gatewaysPage(gateways: GatewayItem[], now: number, cluster: boolean): Html {
  const connections = gateways.flatMap((g) => g.connections.map((c) => ({ g, c })));
  return html`<h1>Gateways</h1>
<p class="muted">${cluster ? "Every gateway sharing this PostgreSQL database, as its row says: up while it published within its last 3 heartbeats." : "Standalone: this gateway's own row. With DATABASE_URL every gateway of the deployment is listed here."}</p>
${gateways.length === 0
    ? html`<p class="empty" data-testid="gateways-empty">No gateway has registered yet.</p>`
    : html`<table id="gateways"><thead><tr><th>gateway</th><th>health</th><th>version</th><th>endpoint</th><th>last seen</th><th>connected peers</th><th>gid</th><th></th></tr></thead><tbody>
${gateways.map((g) => html`<tr id="${anchor(g.gid)}" data-gid="${g.gid}" data-health="${g.health}"><td><b>${g.name}</b>${g.self ? html` <span class="muted small">(this one)</span>` : ""}</td><td>${health(g)}</td><td>${g.version}</td>
<td class="mono">${g.endpoint ?? "—"}</td><td>${utcTime(g.last_seen)} <span class="muted small">${ago(g.last_seen, now)}</span></td><td data-testid="connected-peers">${g.connected_peers}</td><td class="mono small" title="${g.gid}">${g.gid.slice(0, 8)}…</td>
<td><a href="/problems?gid=${encodeURIComponent(g.gid)}">problems</a> · <a href="/audit?gid=${encodeURIComponent(g.gid)}">audit</a>${g.unreadable ? html`<br><span class="err small" data-testid="unreadable">${g.unreadable}</span>` : ""}</td></tr>`)}</tbody></table>`}
<h2>Connections across gateways</h2>
${connections.length === 0
    ? html`<p class="empty" data-testid="cross-connections-empty">No connection on any gateway.</p>`
    : html`<table id="cross-connections"><thead><tr><th>gateway</th><th>cid</th><th>peer</th><th>endpoint</th><th>last handshake</th><th>rx</th><th>tx</th><th>state</th></tr></thead><tbody>
${connections.map(({ g, c }) => (isUnreadable(c) ? html`<tr data-gid="${g.gid}" class="unreadable"><td>${gatewayCell(g)}</td><td colspan="7" class="err small">${c.unreadable}</td></tr>` : connectionRow(g, c, now)))}</tbody></table>`}`;
}

export function problemsPage(problems: GatewayProblem[], gateways: Pick<GatewayRow, "gid" | "name">[], gid: string | undefined): Html {
  return html`<h1>Problems</h1>
<form method="get" action="/problems" class="search"><label class="inline">gateway <select name="gid"><option value="">every gateway</option>
${gateways.map((g) => html`<option value="${g.gid}"${g.gid === gid ? html` selected` : ""}>${g.name} (${g.gid.slice(0, 8)})</option>`)}</select></label> <button>Filter</button></form>
${problems.length === 0
    ? html`<p class="empty" data-testid="problems-empty">${gid ? "No problem on this gateway." : "No problems detected on any gateway."}</p>`
    : html`<table id="problems"><thead><tr><th>gateway</th><th>problem</th><th>cid</th><th>since</th><th>seen</th><th>likely cause / fix</th></tr></thead><tbody>
${problems.map((p) => ("unreadable" in p
    ? html`<tr data-gid="${p.gid}" class="unreadable"><td>${p.gateway}</td><td colspan="5" class="err small">${p.unreadable}</td></tr>`
    : html`<tr data-gid="${p.gid}" data-kind="${p.kind}"><td>${p.gateway}</td><td>${p.title}</td><td>${p.cid === undefined || p.cid === null ? "—" : p.self ? cidLink(p.cid) : p.cid}</td><td>${utcTime(p.since)}</td><td>${p.count ?? ""}${p.count !== undefined ? "×" : ""}</td>
<td class="small">${p.likely_cause ? html`${p.likely_cause}<br><b>Fix:</b> ${p.fix}` : html`<span class="muted">on that gateway's own admin</span>`}</td></tr>`))}</tbody></table>`}`;
}
