// Overview: the first page an operator sees, built to answer "is it working, and if not, why":
// what the gateway is (facts), what is wrong (problems, drops and who caused them), what it is
// doing (live rates, handshakes, top talkers) and what is about to change (expiring peers).
// The live part is one fragment htmx refreshes (GET /overview/live).
import { html } from "hono/html";
import type { PeerRow } from "../../src/store/index.ts";
import type { ConnectionView } from "../../src/telemetry/view.ts";
import type { GatewayFacts, ProblemView } from "../types.ts";
import { timeChart } from "./chart.ts";
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
<div class="small muted">${seen(p)}</div></li>`)}</ul>`}`;
}

/** When a problem was seen, on its own line so the title and the fix stay readable. */
function seen(p: ProblemView): Html {
  if (p.count === 1 || p.since === p.last_seen) return html`Seen ${p.count === 1 ? "once" : `${p.count}×`} at ${utcTime(p.last_seen)}`;
  return html`Seen ${p.count}×, first ${utcTime(p.since)}, last ${utcTime(p.last_seen)}`;
}

function factsTable(f: GatewayFacts, now: number): Html {
  const started = Date.parse(f.started_at);
  return html`<h2>Gateway</h2><table class="facts" data-testid="facts"><tbody>
<tr><th>public key</th><td class="mono" data-fact="public_key">${f.public_key}</td><th>UDP port</th><td class="mono" data-fact="udp_port">${f.udp_port}</td></tr>
<tr><th>version</th><td data-fact="version">${f.version}</td><th>gateway id (gid)</th><td class="mono" data-fact="gid">${f.gid}</td></tr>
<tr><th>uptime</th><td data-fact="uptime">${fmtDuration(now - started)} (since ${utcTime(started)})</td><th>AEAD backend</th><td data-fact="aead">${f.aead}</td></tr>
<tr><th>UDP buffers in effect</th><td data-fact="udp_buffers">receive ${fmtBytes(f.udp_buffers.recv)}, send ${fmtBytes(f.udp_buffers.send)}</td>
<th>queue depths</th><td data-fact="queue_depths">UDP ${f.queue_depths.udp}, TUN ${f.queue_depths.tun} packets waiting</td></tr></tbody></table>`;
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

/** Drops by reason over the whole gateway, each with the connections that caused it. */
export function dropsTable(conns: ConnectionView[], unattributed: Record<string, number>): Html {
  const by = new Map<string, { total: number; who: { cid: number; n: number }[]; none: number }>();
  const get = (r: string) => by.get(r) ?? (by.set(r, { total: 0, who: [], none: 0 }), by.get(r)!);
  for (const c of conns) {
    for (const [reason, n] of Object.entries(c.drops)) {
      if (!n) continue;
      const e = get(reason);
      e.total += n;
      e.who.push({ cid: c.cid, n });
    }
  }
  for (const [reason, n] of Object.entries(unattributed)) {
    if (!n) continue;
    const e = get(reason);
    e.total += n;
    e.none += n;
  }
  const rows = [...by].sort((a, b) => b[1].total - a[1].total);
  return html`<h2>Drops by reason</h2>${rows.length === 0
    ? html`<p class="empty">No packets dropped since start.</p>`
    : html`<table data-testid="drops"><thead><tr><th>reason</th><th>packets</th><th>caused by</th></tr></thead><tbody>${rows.map(([reason, e]) => html`<tr data-reason="${reason}"><td class="mono">${reason}</td><td>${e.total}</td>
<td>${e.who.sort((a, b) => b.n - a.n).slice(0, 8).map((w) => html`${cidLink(w.cid)} (${w.n}) `)}${e.who.length > 8 ? html`<span class="muted">and ${e.who.length - 8} more</span> ` : ""}${e.none ? html`<span class="muted">no known connection (${e.none})</span>` : ""}</td></tr>`)}</tbody></table>`}`;
}

function topTalkers(conns: ConnectionView[], names: Map<string, PeerRow>): Html {
  const top = conns.filter((c) => c.rx_bytes + c.tx_bytes > 0).sort((a, b) => b.rx_bytes + b.tx_bytes - (a.rx_bytes + a.tx_bytes)).slice(0, TOP_TALKERS);
  return html`<h2>Top talkers</h2>${top.length === 0
    ? html`<p class="empty">No traffic since start.</p>`
    : html`<table data-testid="top-talkers"><thead><tr><th>connection</th><th>peer</th><th>received</th><th>sent</th></tr></thead><tbody>${top.map((c) => html`<tr><td>${cidLink(c.cid)}</td>
<td>${names.get(c.public_key)?.name ?? html`<span class="muted">config file</span> <span class="mono">${c.public_key.slice(0, 12)}…</span>`}</td><td>${fmtBytes(c.rx_bytes)}</td><td>${fmtBytes(c.tx_bytes)}</td></tr>`)}</tbody></table><p class="muted small">Since the gateway started.</p>`}`;
}

function expiringPeers(peers: PeerRow[], now: number): Html {
  const soon = peers.filter((p) => p.expiresAt !== null && p.expiresAt > now - EXPIRY_WINDOW_MS && p.expiresAt < now + EXPIRY_WINDOW_MS).sort((a, b) => a.expiresAt! - b.expiresAt!);
  return html`<h2>Peers expiring soon</h2>${soon.length === 0
    ? html`<p class="empty">No peer expires within 7 days.</p>`
    : html`<table data-testid="expiring"><thead><tr><th>peer</th><th>expires</th><th></th></tr></thead><tbody>${soon.map((p) => html`<tr><td><a href="/peers/${encodeURIComponent(p.id)}">${p.name}</a></td>
<td>${utcTime(p.expiresAt!)}</td><td>${p.expiresAt! <= now ? html`<span class="pill failed">expired ${fmtDuration(now - p.expiresAt!)} ago</span>` : html`in ${fmtDuration(p.expiresAt! - now)}`}</td></tr>`)}</tbody></table>`}`;
}
