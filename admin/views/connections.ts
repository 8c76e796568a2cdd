// Connections: the live list (htmx-refreshed rows, searchable and sortable without JS) and one
// connection's page, whose live part is a fragment refreshed the same way.
import { html, raw } from "hono/html";
import type { LogLine } from "../../src/telemetry/log.ts";
import type { ConnectionView } from "../../src/telemetry/view.ts";
import type { TrafficPoint } from "../../src/store/index.ts";
import type { ConnectionPortalView } from "../types.ts";
import { fillQuietIntervals, timeChart } from "./chart.ts";
import { ago, cidLink, fmtBytes, utcTime, type Html } from "./layout.ts";
import { logRows } from "./logs.ts";

export const CONNECTION_SORTS = ["cid", "name", "state", "handshake", "rx", "tx"] as const;
export type ConnectionSort = (typeof CONNECTION_SORTS)[number];

/** A connection with the name of its peer (store peers have one; file peers do not). */
export type ConnectionItem = ConnectionView & { name: string | null };

export interface ConnectionListQuery {
  q: string;
  sort: ConnectionSort;
  dir: "asc" | "desc";
  /** Friendly messages for query values not understood (the defaults were used). */
  problems: string[];
}

const LABELS: Record<ConnectionSort, string> = { cid: "cid", name: "peer", state: "state", handshake: "last handshake", rx: "rx", tx: "tx" };

/** The query string that reproduces a list query (for the rows fragment and sort links). */
export function connectionQs(q: ConnectionListQuery, over: Partial<ConnectionListQuery> = {}): string {
  const m = { ...q, ...over };
  return new URLSearchParams({ ...(m.q ? { q: m.q } : {}), sort: m.sort, dir: m.dir }).toString();
}

function sortHeader(q: ConnectionListQuery, key: ConnectionSort): Html {
  const on = q.sort === key;
  const dir = on && q.dir === "asc" ? "desc" : on ? "asc" : key === "cid" || key === "name" || key === "state" ? "asc" : "desc";
  const arrow = on ? (q.dir === "asc" ? " ▲" : " ▼") : "";
  return html`<th${on ? raw(` aria-sort="${q.dir === "asc" ? "ascending" : "descending"}"`) : ""}><a href="/connections?${connectionQs(q, { sort: key, dir })}" data-sort="${key}">${LABELS[key]}${arrow}</a></th>`;
}

export function connectionRows(conns: ConnectionItem[], total: number, q: ConnectionListQuery, now: number): Html {
  if (total === 0) return html`<tr><td colspan="10" class="empty" data-testid="connections-empty">No peers in the data plane yet. Add one on the <a href="/peers">Peers</a> page.</td></tr>`;
  if (conns.length === 0) return html`<tr><td colspan="10" class="empty" data-testid="connections-no-match">No connection matches “${q.q}”. <a href="/connections">Show all ${total}</a></td></tr>`;
  return html`${conns.map((c) => html`<tr data-cid="${c.cid}" data-state="${c.state}">
<td>${cidLink(c.cid)}</td><td>${c.name ?? (c.portal ? html`<span title="portal client ${c.portal.client_id}">${c.portal.name ?? c.portal.client_id}</span> <span class="muted small">portal</span>` : html`<span class="muted">config file</span>`)}</td><td class="mono key">${c.public_key}</td><td class="mono">${c.endpoint ?? "—"}${c.path ? html`<br><span class="muted small" data-testid="path">${c.path}</span>` : ""}</td>
<td class="mono">${c.sessions.map((s) => `(${s})`).join(" ") || "—"}</td><td>${ago(c.last_handshake, now)}</td>
<td>${fmtBytes(c.rx_bytes)}</td><td>${fmtBytes(c.tx_bytes)}</td><td>${c.rx_packets} / ${c.tx_packets}</td>
<td><span class="pill ${c.state}" title="since ${c.state_since}">${c.state.replace("_", " ")}</span> <span class="muted">${ago(c.state_since, now)}</span></td></tr>`)}`;
}

export function connectionsPage(conns: ConnectionItem[], total: number, q: ConnectionListQuery, now: number): Html {
  return html`<h1>Connections</h1>
${q.problems.map((m) => html`<p class="err" role="alert" data-testid="query-problem">${m}</p>`)}
<form method="get" action="/connections" id="connection-search" class="search"><label class="inline">Search <input name="q" type="search" value="${q.q}" placeholder="cid, peer, key, endpoint, address or state" size="42"></label>
<input type="hidden" name="sort" value="${q.sort}"><input type="hidden" name="dir" value="${q.dir}"> <button type="submit">Search</button>${q.q ? html` <a href="/connections">clear</a>` : ""}
<span class="muted">Live: refreshed every second.</span></form>
<table><thead><tr>${sortHeader(q, "cid")}${sortHeader(q, "name")}<th>public key</th><th>endpoint</th><th>sessions</th>${sortHeader(q, "handshake")}${sortHeader(q, "rx")}${sortHeader(q, "tx")}<th>packets rx/tx</th>${sortHeader(q, "state")}</tr></thead>
<tbody id="connection-rows" hx-get="/connections/rows?${connectionQs(q)}" hx-trigger="every 1s" hx-swap="innerHTML">${connectionRows(conns, total, q, now)}</tbody></table>`;
}

/**
 * The stored traffic of one peer as a chart of rates: each sample holds the bytes of one
 * interval (store/traffic.ts), so rate = bytes × 8 / interval; quiet intervals are zero.
 */
export function trafficChart(points: TrafficPoint[], sampleSeconds: number, now: number): Html {
  const ms = sampleSeconds * 1000;
  const series = (f: (p: TrafficPoint) => number) => fillQuietIntervals(points.map((p) => ({ ts: p.ts, value: (f(p) * 8) / sampleSeconds })), ms, now);
  const rx = series((p) => p.rxBytes);
  const one = points[0];
  const empty = !one
    ? `No traffic stored yet: the gateway samples every ${sampleSeconds} s and stores intervals with traffic.`
    : `One sample so far (${new Date(one.ts).toISOString().slice(11, 19)} UTC: ${fmtBytes(one.rxBytes)} received, ${fmtBytes(one.txBytes)} sent in ${sampleSeconds} s); the line starts with the second.`;
  return timeChart({
    title: `Traffic, last 24 h (average per ${sampleSeconds} s sample)`,
    unit: "bit/s",
    empty,
    series: [
      { label: "received", cls: "s-rx", points: rx },
      { label: "sent", cls: "s-tx", points: series((p) => p.txBytes) },
    ],
  });
}

export interface ConnectionDetail {
  c: ConnectionView;
  name: string | null;
  /** Where the peer is edited (store peers), if anywhere. */
  peerHref: string | null;
  logs: LogLine[];
  traffic: TrafficPoint[];
  sampleSeconds: number;
  /** Banners for the connection's problems (admin/views/problems.ts), rendered by the caller. */
  banners?: Html;
  now: number;
  /** Portal mode: the client as the portal knows it, and the portal messages that touched it. */
  portal?: ConnectionPortalView;
}

/** Each portal message that touched this client, newest first (portal-session.ts keeps the last 64). */
function portalTimeline(p: ConnectionPortalView): Html {
  const rows = [...p.timeline].reverse();
  return html`<h3>Portal messages</h3><table data-testid="portal-timeline"><tbody>${rows.length === 0
    ? html`<tr><td class="empty">No portal messages for this client yet.</td></tr>`
    : rows.map((e) => html`<tr><td>${utcTime(e.at)}</td><td class="mono">${e.event}</td><td class="mono">${e.rid ?? ""}</td><td>${e.detail ?? ""}</td></tr>`)}</tbody></table>`;
}

export function connectionDetail(d: ConnectionDetail): Html {
  return html`<h1>Connection ${d.c.cid}${d.name ? html` · ${d.name}` : ""}</h1>${connectionLive(d)}`;
}

/**
 * What goes in a connection's Timeline: handshakes, sessions, endpoint and authorization changes,
 * and its named problems appearing and clearing. Problem lines are matched by their target, not
 * their message: an appearing problem's message is its title ("Packets from … outside the peer's
 * AllowedIPs"), which no word list would catch.
 */
export function isTimelineEvent(l: LogLine): boolean {
  return l.target === "problems" || /handshake|endpoint|session|keys|goodbye|connection|denied|authorization|candidate|pair|nominat|relay|ice /i.test(l.msg);
}

/** A problem's cause and fix are in its banner: the Timeline says only what and when. */
function timelineLine(l: LogLine): LogLine {
  if (l.target !== "problems") return l;
  const { likely_cause: _c, fix: _f, public_key: _k, ...rest } = l;
  return rest as LogLine;
}

/** The part of a connection's page that refreshes (GET /connections/:cid/live). */
export function connectionLive(d: ConnectionDetail): Html {
  const { c, now } = d;
  const timeline = d.logs.filter(isTimelineEvent).map(timelineLine);
  const drops = Object.entries(c.drops).filter(([, n]) => n);
  return html`<div id="connection-live" hx-get="/connections/${c.cid}/live" hx-trigger="every 2s" hx-swap="outerHTML">${d.banners ?? ""}
<div class="columns"><section><table class="facts"><tbody><tr><th>peer</th><td>${d.peerHref ? html`<a href="${d.peerHref}">${d.name}</a>` : d.portal ? html`portal client <span class="mono" data-testid="portal-client">${d.portal.client_id}</span>${d.portal.name ? html` · ${d.portal.name}` : ""}` : html`<span class="muted">config file peer</span>`}</td></tr>
${d.portal ? html`<tr><th>portal resources</th><td class="mono">${d.portal.resources.map((r) => `${r.rid}${r.expires_at ? ` (until ${r.expires_at})` : ""}`).join(", ") || "—"}</td></tr>` : ""}
<tr><th>public key</th><td class="mono">${c.public_key}</td></tr><tr><th>endpoint</th><td class="mono">${c.endpoint ?? "—"}</td></tr>${c.path ? html`<tr><th>path</th><td data-testid="path">${c.path}</td></tr>` : ""}
<tr><th>sessions</th><td class="mono">${c.sessions.map((s) => `(${s})`).join(" ") || "—"}</td></tr>
<tr><th>state</th><td><span class="pill ${c.state}" data-testid="state">${c.state.replace("_", " ")}</span> <span class="muted" title="${c.state_since}">entered ${ago(c.state_since, now)}</span></td></tr><tr><th>last handshake</th><td>${c.last_handshake ? html`${ago(c.last_handshake, now)} · ${utcTime(c.last_handshake)}` : "never"}</td></tr>
<tr><th>handshakes</th><td>${c.handshakes.completed} completed (${c.handshakes.confirmed ?? 0} confirmed), ${c.handshakes.initiated} initiated, ${c.handshakes.failed} given up</td></tr>
<tr><th>traffic</th><td>${fmtBytes(c.rx_bytes)} received (${c.rx_packets} packets), ${fmtBytes(c.tx_bytes)} sent (${c.tx_packets} packets)</td></tr>
<tr><th>allowed IPs</th><td class="mono">${c.allowed_ips.join(", ")}</td></tr></tbody></table></section>
<section><h2>Drops by reason</h2>${drops.length === 0 ? html`<p class="empty">No packets from or to this peer were dropped.</p>` : html`<table data-testid="drops"><tbody>${drops.map(([r, n]) => html`<tr><td class="mono">${r}</td><td>${n}</td></tr>`)}</tbody></table>`}</section></div>
<h2>Traffic history</h2>${trafficChart(d.traffic, d.sampleSeconds, now)}
<h2>Timeline</h2><table><tbody>${logRows(timeline, "No handshakes or session events logged for this connection yet.")}</tbody></table>
${d.portal ? portalTimeline(d.portal) : ""}
<h2>Recent logs</h2><p><a href="/logs?cid=${c.cid}">all logs for cid ${c.cid}</a> · <a href="/audit?cid=${c.cid}">audit trail</a></p><table><tbody>${logRows(d.logs.slice(0, 50))}</tbody></table>
<p class="muted small">Updated ${utcTime(now)} · refreshed every 2 s</p></div>`;
}

/** The live part once the connection has left the data plane (no polling: nothing more to show). */
export function connectionGone(cid: number, last?: { state: string; since: string }): Html {
  const why = last?.state === "expired" ? html`its peer <b>expired</b> ${utcTime(last.since)}` : last?.state === "disabled" ? html`its peer was <b>disabled</b> ${utcTime(last.since)}` : "its peer was removed, disabled or replaced";
  return html`<div id="connection-live"><p class="empty" role="alert" data-testid="connection-gone" data-state="${last?.state ?? "gone"}">Connection ${cid} is no longer in the data plane: ${why}.
<a href="/connections">All connections</a> · <a href="/audit?cid=${cid}">its audit trail</a> · <a href="/logs?cid=${cid}">its logs</a></p></div>`;
}
