// Connections: the live list (htmx-refreshed rows) and one connection's page.
import { html } from "hono/html";
import type { LogLine } from "../../src/telemetry/log.ts";
import type { ConnectionView } from "../../src/telemetry/view.ts";
import type { TrafficPoint } from "../../src/store/index.ts";
import { ago, fmtBytes, type Html } from "./layout.ts";
import { logRows } from "./logs.ts";

export function connectionRows(conns: ConnectionView[], now: number): Html {
  if (conns.length === 0) return html`<tr><td colspan="9" class="muted">No peers yet. Add one on the Peers page.</td></tr>`;
  return html`${conns.map((c) => html`<tr data-cid="${c.cid}" data-state="${c.state}">
<td><a href="/connections/${c.cid}">${c.cid}</a></td><td class="mono">${c.public_key}</td><td class="mono">${c.endpoint ?? "—"}</td>
<td class="mono">${c.sessions.map((s) => `(${s})`).join(" ") || "—"}</td><td>${ago(c.last_handshake, now)}</td>
<td>${fmtBytes(c.rx_bytes)}</td><td>${fmtBytes(c.tx_bytes)}</td><td>${c.rx_packets} / ${c.tx_packets}</td>
<td><span class="pill ${c.state}">${c.state}</span></td></tr>`)}`;
}

export function connectionsPage(conns: ConnectionView[], now: number): Html {
  return html`<h1>Connections</h1><p class="muted">Live: refreshed every second.</p>
<table><thead><tr><th>cid</th><th>public key</th><th>endpoint</th><th>sessions</th><th>last handshake</th><th>rx</th><th>tx</th><th>packets rx/tx</th><th>state</th></tr></thead>
<tbody id="connection-rows" hx-get="/connections/rows" hx-trigger="every 1s" hx-swap="innerHTML">${connectionRows(conns, now)}</tbody></table>`;
}

export function sparkline(points: TrafficPoint[], width = 480, height = 60): Html {
  if (points.length === 0) return html`<p class="muted">No traffic recorded yet.</p>`;
  const max = Math.max(1, ...points.map((p) => Math.max(p.rxBytes, p.txBytes)));
  const t0 = points[0]!.ts;
  const span = Math.max(1, points[points.length - 1]!.ts - t0);
  const line = (f: (p: TrafficPoint) => number) =>
    points.map((p) => `${((p.ts - t0) / span * width).toFixed(1)},${(height - (f(p) / max) * height).toFixed(1)}`).join(" ");
  return html`<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="traffic history">
<polyline fill="none" stroke="#2b8a3e" stroke-width="1.5" points="${line((p) => p.rxBytes)}"/>
<polyline fill="none" stroke="#1971c2" stroke-width="1.5" points="${line((p) => p.txBytes)}"/></svg>
<div class="muted">green: received, blue: sent, per sample; peak ${fmtBytes(max)}</div>`;
}

export function connectionDetail(c: ConnectionView, logs: LogLine[], traffic: TrafficPoint[], now: number): Html {
  const timeline = logs.filter((l) => /handshake|endpoint|session|keys|goodbye|connection|denied|authorization/.test(l.msg));
  return html`<h1>Connection ${c.cid}</h1>
<table><tbody><tr><th>public key</th><td class="mono">${c.public_key}</td></tr><tr><th>endpoint</th><td class="mono">${c.endpoint ?? "—"}</td></tr>
<tr><th>sessions</th><td class="mono">${c.sessions.map((s) => `(${s})`).join(" ") || "—"}</td></tr>
<tr><th>state</th><td><span class="pill ${c.state}">${c.state}</span></td></tr><tr><th>last handshake</th><td>${ago(c.last_handshake, now)}</td></tr>
<tr><th>handshakes</th><td>${c.handshakes.completed} completed, ${c.handshakes.initiated} initiated, ${c.handshakes.failed} failed</td></tr>
<tr><th>traffic</th><td>${fmtBytes(c.rx_bytes)} received, ${fmtBytes(c.tx_bytes)} sent</td></tr>
<tr><th>allowed IPs</th><td class="mono">${c.allowed_ips.join(", ")}</td></tr></tbody></table>
<h2>Drops by reason</h2>${Object.keys(c.drops).length === 0 ? html`<p class="muted">None.</p>` : html`<table><tbody>${Object.entries(c.drops).map(([r, n]) => html`<tr><td>${r}</td><td>${n}</td></tr>`)}</tbody></table>`}
<h2>Traffic history</h2>${sparkline(traffic)}
<h2>Timeline</h2><table><tbody>${logRows(timeline)}</tbody></table>
<h2>Recent logs for cid ${c.cid}</h2><p><a href="/logs?cid=${c.cid}">all of them in the log viewer</a></p><table><tbody>${logRows(logs.slice(0, 50))}</tbody></table>`;
}

