// Overview: the first page an operator sees, built to answer "is it working, and if not, why":
// what the gateway is (facts), what is wrong (problems, drops and who caused them), what it is
// doing (live rates, handshakes, top talkers) and what is about to change (expiring peers).
// The live part is one fragment htmx refreshes (GET /overview/live).
import { html } from "hono/html";
import type { PeerRow } from "../../src/store/index.ts";
import type { ConnectionView } from "../../src/telemetry/view.ts";
import type { GatewayFacts, PortalView, ProblemView } from "../types.ts";
import { timeChart } from "./chart.ts";
import { problemSeen } from "./problems.ts";
import { cidLink, fmtBytes, fmtDuration, utcTime, type Html } from "./layout.ts";

/** The most warnings the Overview counts (it says "1000+" beyond). */
export const WARNINGS_CAP = 1000;

export interface OverviewData {
  conns: ConnectionView[];
  facts?: GatewayFacts;
  problems: ProblemView[];
  /** The store's peers (names, expiry). */
  peers: PeerRow[];
  /** Warnings and errors logged in the last 24 h (counted up to WARNINGS_CAP). */
  errors: number;
  now: number;
  /** Portal mode: the portal connection. */
  portal?: PortalView;
}

/** Peers whose expiry falls within this window are listed (and those expired in it). */
export const EXPIRY_WINDOW_MS = 7 * 24 * 3600_000;
const TOP_TALKERS = 5;

export function overview(d: OverviewData): Html {
  return html`<h1>Overview</h1>${overviewLive(d)}`;
}

export function overviewLive(d: OverviewData): Html {
  const names = new Map(d.peers.map((p) => [p.publicKey, p]));
  return html`<div id="overview-live" hx-get="/overview/live" hx-trigger="every 5s" hx-swap="outerHTML">
${summaryCards(d)}
${problemList(d.problems)}
${d.facts ? factsTable(d.facts, d.now) : ""}
${d.portal ? portalTable(d.portal, d.now) : ""}
<div class="charts">${d.facts ? rateCharts(d.facts) : ""}</div>
<div class="columns"><section>${dropsTable(d.conns, d.facts?.unattributed_drops ?? {})}</section>
<section>${topTalkers(d.conns, names)}</section></div>
${expiringPeers(d.peers, d.now)}
<p class="muted small">Updated ${utcTime(d.now)} · refreshed every 5 s</p></div>`;
}

function summaryCards(d: OverviewData): Html {
  const connected = d.conns.filter((c) => c.state === "connected").length;
  const rx = d.conns.reduce((a, c) => a + c.rx_bytes, 0);
  const tx = d.conns.reduce((a, c) => a + c.tx_bytes, 0);
  return html`<div class="cards">
<div class="card">Connected<b data-testid="connected-count">${connected}</b>of ${d.conns.length} peers in the data plane</div>
<div class="card">Peers in the UI<b>${d.peers.length}</b></div>
<div class="card">Problems<b data-testid="problem-count">${d.problems.length}</b>${d.problems.length ? html`<a href="#problems">see below</a>` : "none detected"}</div>
<div class="card">Received<b>${fmtBytes(rx)}</b>since start</div><div class="card">Sent<b>${fmtBytes(tx)}</b>since start</div>
<div class="card">Warnings, last 24 h<b data-testid="warning-count">${d.errors >= WARNINGS_CAP ? `${WARNINGS_CAP}+` : d.errors}</b><a href="/errors">see them</a></div></div>`;
}

export function problemList(problems: ProblemView[]): Html {
  return html`<h2 id="problems">Problems</h2>${problems.length === 0
    ? html`<p class="empty" data-testid="problems-empty">No problems detected.</p>`
    : html`<ul class="problems" data-testid="problems">${problems.map((p) => html`<li class="problem" data-kind="${p.kind}">
<div class="title"><strong>${p.title}</strong> ${p.cid !== null ? html`<span>on connection ${cidLink(p.cid)}</span>` : ""} ${p.source ? html`<span class="mono">from ${p.source}</span>` : ""}</div>
<dl class="why"><dt>Likely cause</dt><dd>${p.likely_cause}</dd><dt>Fix</dt><dd>${p.fix}</dd></dl>
<div class="small muted">${problemSeen(p)}</div></li>`)}</ul>`}`;
}


function factsTable(f: GatewayFacts, now: number): Html {
  const started = Date.parse(f.started_at);
  return html`<h2>Gateway</h2><table class="facts" data-testid="facts"><tbody>
<tr><th>public key</th><td class="mono" data-fact="public_key">${f.public_key}</td><th>UDP port</th><td class="mono" data-fact="udp_port">${f.udp_port}</td></tr>
<tr><th>version</th><td data-fact="version">${f.version}</td><th>gateway id (gid)</th><td class="mono" data-fact="gid">${f.gid}</td></tr>
<tr><th>uptime</th><td data-fact="uptime">${fmtDuration(now - started)} (since ${utcTime(started)})</td><th>AEAD backend</th><td data-fact="aead">${f.aead}</td></tr>
<tr><th>UDP buffers in effect</th><td data-fact="udp_buffers">receive ${fmtBytes(f.udp_buffers.recv)}, send ${fmtBytes(f.udp_buffers.send)}</td>
<th>queue depths</th><td data-fact="queue_depths">UDP ${f.queue_depths.udp}, TUN ${f.queue_depths.tun} packets waiting</td></tr>${f.receive_queue ? html`
<tr><th>receive queue delay</th><td class="prose" data-fact="receive_queue_delay">${f.receive_queue.managed ? (f.receive_queue.delay_ms > 0 ? `${f.receive_queue.delay_ms.toFixed(1)} ms (oldest of the last batch)` : "idle") : "not measured"}</td>
<th>queue management</th><td class="prose" data-fact="receive_queue_managed">${f.receive_queue.managed ? html`CoDel: data packets that wait over 5 ms for 100 ms are dropped (<span class="mono">queue_delay</span>)` : "off: the socket buffer drops only when full"}</td></tr>` : ""}</tbody></table>`;
}

/** Portal mode: is the portal there, since when, how often it went away, and how fast it answers a join. */
function portalTable(p: PortalView, now: number): Html {
  const since = p.connected_since ? Date.parse(p.connected_since) : null;
  const last = p.last_message_at ? Date.parse(p.last_message_at) : null;
  return html`<h2>Portal</h2><table class="facts" data-testid="portal"><tbody>
<tr><th>portal</th><td class="mono" data-portal="url">${p.url}</td><th>state</th><td data-portal="state"><strong>${p.state}</strong></td></tr>
<tr><th>connected since</th><td data-portal="connected_since">${since === null ? "not joined" : html`${utcTime(since)} (${fmtDuration(now - since)})`}</td>
<th>last message</th><td data-portal="last_message_at">${last === null ? "none yet" : html`${utcTime(last)} (${fmtDuration(now - last)} ago)`}</td></tr>
<tr><th>reconnects</th><td data-portal="reconnects">${p.reconnects}</td><th>join latency</th><td data-portal="join_latency_ms">${p.join_latency_ms === null ? "—" : `${Math.round(p.join_latency_ms)} ms`}</td></tr>
<tr><th>malformed messages</th><td data-portal="malformed">${p.malformed}</td><th>dropped (buffer full)</th><td data-portal="dropped">${p.dropped}</td></tr>
<tr><th>tunnel addresses (init)</th><td class="mono" data-portal="addresses">${p.ipv4 ?? "—"} ${p.ipv6 ?? ""}</td><th>portal clients</th><td data-portal="clients">${p.clients}</td></tr>
</tbody></table>`;
}

function rateCharts(f: GatewayFacts): Html {
  const pts = f.throughput;
  const interval = pts.length ? Math.round(pts[pts.length - 1]!.interval_s) : 5;
  const empty = pts.length === 0 ? "No samples yet: the first arrives a few seconds after start." : `One sample so far (${utcTimeText(pts[0]!.ts)}); the line starts with the second.`;
  return html`${timeChart({
    title: "Throughput (gateway-wide, WireGuard transport bytes)",
    unit: "bit/s",
    empty,
    series: [
      { label: "received", cls: "s-rx", points: pts.map((p) => ({ ts: p.ts, value: p.rx_bytes_per_s * 8 })) },
      { label: "sent", cls: "s-tx", points: pts.map((p) => ({ ts: p.ts, value: p.tx_bytes_per_s * 8 })) },
    ],
  })}${timeChart({
    title: "Handshakes",
    unit: "count",
    unitNote: `handshakes per ${interval} s`,
    empty,
    series: [
      { label: "completed", cls: "s-ok", points: pts.map((p) => ({ ts: p.ts, value: p.handshakes })) },
      { label: "given up", cls: "s-bad", points: pts.map((p) => ({ ts: p.ts, value: p.handshake_failures })) },
    ],
  })}`;
}

const utcTimeText = (ts: number) => `${new Date(ts).toISOString().slice(11, 19)} UTC`;

/** One drop reason gateway-wide: its packets, the connections that caused them (most first), and those no connection caused. */
export interface DropReason {
  reason: string;
  packets: number;
  by: { cid: number; packets: number }[];
  no_connection: number;
}

/** Drops by reason over the whole gateway, biggest first (the page and GET /api/overview). */
export function dropsByReason(conns: ConnectionView[], unattributed: Record<string, number>): DropReason[] {
  const by = new Map<string, DropReason>();
  const get = (reason: string) => by.get(reason) ?? (by.set(reason, { reason, packets: 0, by: [], no_connection: 0 }), by.get(reason)!);
  for (const c of conns) {
    for (const [reason, n] of Object.entries(c.drops)) {
      if (!n) continue;
      const e = get(reason);
      e.packets += n;
      e.by.push({ cid: c.cid, packets: n });
    }
  }
  for (const [reason, n] of Object.entries(unattributed)) {
    if (!n) continue;
    const e = get(reason);
    e.packets += n;
    e.no_connection += n;
  }
  for (const e of by.values()) e.by.sort((x, y) => y.packets - x.packets || x.cid - y.cid);
  return [...by.values()].sort((x, y) => y.packets - x.packets);
}

/** Drops by reason over the whole gateway, each with the connections that caused it. */
export function dropsTable(conns: ConnectionView[], unattributed: Record<string, number>): Html {
  const rows = dropsByReason(conns, unattributed);
  return html`<h2>Drops by reason</h2>${rows.length === 0
    ? html`<p class="empty">No packets dropped since start.</p>`
    : html`<table data-testid="drops"><thead><tr><th>reason</th><th>packets</th><th>caused by</th></tr></thead><tbody>${rows.map((e) => html`<tr data-reason="${e.reason}"><td class="mono">${e.reason}</td><td>${e.packets}</td>
<td>${e.by.slice(0, 8).map((w) => html`${cidLink(w.cid)} (${w.packets}) `)}${e.by.length > 8 ? html`<span class="muted">and ${e.by.length - 8} more</span> ` : ""}${e.no_connection ? html`<span class="muted">no known connection (${e.no_connection})</span>` : ""}</td></tr>`)}</tbody></table>`}`;
}

export interface TopTalker {
  cid: number;
  public_key: string;
  /** The store peer's name; null for a config file peer. */
  name: string | null;
  rx_bytes: number;
  tx_bytes: number;
}

/** The connections that moved the most bytes since start (the page and GET /api/overview). */
export function topTalkerList(conns: ConnectionView[], names: Map<string, PeerRow>): TopTalker[] {
  return conns.filter((c) => c.rx_bytes + c.tx_bytes > 0).sort((a, b) => b.rx_bytes + b.tx_bytes - (a.rx_bytes + a.tx_bytes)).slice(0, TOP_TALKERS)
    .map((c) => ({ cid: c.cid, public_key: c.public_key, name: names.get(c.public_key)?.name ?? null, rx_bytes: c.rx_bytes, tx_bytes: c.tx_bytes }));
}

export interface ExpiringPeer {
  id: string;
  name: string;
  public_key: string;
  expires_at: string;
  expired: boolean;
}

/** Store peers expiring within a week, or expired within the last one, soonest first. */
export function expiringPeerList(peers: PeerRow[], now: number): ExpiringPeer[] {
  return peers.filter((p) => p.expiresAt !== null && p.expiresAt > now - EXPIRY_WINDOW_MS && p.expiresAt < now + EXPIRY_WINDOW_MS).sort((a, b) => a.expiresAt! - b.expiresAt!)
    .map((p) => ({ id: p.id, name: p.name, public_key: p.publicKey, expires_at: new Date(p.expiresAt!).toISOString(), expired: p.expiresAt! <= now }));
}

/** The Overview as JSON (GET /api/overview): what the page shows, with the logs' field names. */
export function overviewJson(d: OverviewData) {
  const names = new Map(d.peers.map((p) => [p.publicKey, p]));
  return {
    now: new Date(d.now).toISOString(),
    summary: {
      connected: d.conns.filter((c) => c.state === "connected").length,
      connections: d.conns.length,
      store_peers: d.peers.length,
      problems: d.problems.length,
      rx_bytes: d.conns.reduce((a, c) => a + c.rx_bytes, 0),
      tx_bytes: d.conns.reduce((a, c) => a + c.tx_bytes, 0),
      warnings_24h: d.errors,
      warnings_24h_capped: d.errors >= WARNINGS_CAP,
    },
    facts: d.facts ?? null,
    portal: d.portal ?? null,
    problems: d.problems,
    drops: dropsByReason(d.conns, d.facts?.unattributed_drops ?? {}),
    top_talkers: topTalkerList(d.conns, names),
    expiring_peers: expiringPeerList(d.peers, d.now),
  };
}

function topTalkers(conns: ConnectionView[], names: Map<string, PeerRow>): Html {
  const top = topTalkerList(conns, names);
  return html`<h2>Top talkers</h2>${top.length === 0
    ? html`<p class="empty">No traffic since start.</p>`
    : html`<table data-testid="top-talkers"><thead><tr><th>connection</th><th>peer</th><th>received</th><th>sent</th></tr></thead><tbody>${top.map((c) => html`<tr><td>${cidLink(c.cid)}</td>
<td>${c.name ?? html`<span class="muted">config file</span> <span class="mono">${c.public_key.slice(0, 12)}…</span>`}</td><td>${fmtBytes(c.rx_bytes)}</td><td>${fmtBytes(c.tx_bytes)}</td></tr>`)}</tbody></table><p class="muted small">Since the gateway started.</p>`}`;
}

function expiringPeers(peers: PeerRow[], now: number): Html {
  const soon = expiringPeerList(peers, now);
  return html`<h2>Peers expiring soon</h2>${soon.length === 0
    ? html`<p class="empty">No peer expires within 7 days.</p>`
    : html`<table data-testid="expiring"><thead><tr><th>peer</th><th>expires</th><th></th></tr></thead><tbody>${soon.map((p) => {
      const at = Date.parse(p.expires_at);
      return html`<tr><td><a href="/peers/${encodeURIComponent(p.id)}">${p.name}</a></td>
<td>${utcTime(at)}</td><td>${p.expired ? html`<span class="pill failed">expired ${fmtDuration(now - at)} ago</span>` : html`in ${fmtDuration(at - now)}`}</td></tr>`;
    })}</tbody></table>`}`;
}
