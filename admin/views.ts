// Server-rendered HTML for the admin UI (hono/html escapes every interpolation). Pages are whole
// documents; the parts that refresh live (connection rows, log rows) are fragments htmx swaps in.
import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { LogLine } from "../src/telemetry/log.ts";
import type { ConnectionView } from "../src/telemetry/view.ts";
import type { AuditRow, TrafficPoint } from "../src/store/index.ts";
import type { ResourceView } from "./types.ts";

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

const NAV = [["/", "Overview"], ["/connections", "Connections"], ["/peers", "Peers"], ["/resources", "Resources"], ["/logs", "Logs"], ["/errors", "Errors"], ["/audit", "Audit"], ["/tools/policy", "Policy tester"]] as const;

export function layout(opts: { title: string; path: string; user?: string; csrf?: string }, body: Html): Html {
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${opts.title} · glassgate</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="stylesheet" href="/static/app.css">
<meta name="htmx-config" content='{"includeIndicatorStyles":false}'><script src="/static/htmx.min.js"></script></head>
<body${opts.csrf ? raw(` hx-headers='{"x-csrf-token":"${opts.csrf}"}'`) : ""}>
<header><strong>glassgate</strong>${opts.user ? NAV.map(([href, label]) => html`<a href="${href}" class="${opts.path === href || (href !== "/" && opts.path.startsWith(href)) ? "on" : ""}">${label}</a>`) : ""}
${opts.user ? html`<span class="who">${opts.user} <form class="inline" method="post" action="/logout"><input type="hidden" name="_csrf" value="${opts.csrf}"><button>Log out</button></form></span>` : ""}</header>
<main>${body}</main></body></html>`;
}

export function loginPage(opts: { error?: string; next?: string; csrf: string }): Html {
  return layout({ title: "Log in", path: "/login" }, html`<h1>Log in</h1>
${opts.error ? html`<p class="err" role="alert">${opts.error}</p>` : ""}
<form method="post" action="/login"><input type="hidden" name="next" value="${opts.next ?? "/"}"><input type="hidden" name="_csrf" value="${opts.csrf}">
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button></form>`);
}

export function fmtBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function ago(iso: string | null, now: number): string {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

export function overview(conns: ConnectionView[], peers: number, errors: number, now: number): Html {
  const connected = conns.filter((c) => c.state === "connected").length;
  const rx = conns.reduce((a, c) => a + c.rx_bytes, 0);
  const tx = conns.reduce((a, c) => a + c.tx_bytes, 0);
  return html`<h1>Overview</h1><div class="cards" hx-get="/" hx-select=".cards" hx-swap="outerHTML" hx-trigger="every 2s">
<div class="card">Connected<b data-testid="connected-count">${connected}</b>of ${conns.length} peers in the data plane</div>
<div class="card">Peers in the UI<b>${peers}</b></div>
<div class="card">Received<b>${fmtBytes(rx)}</b></div><div class="card">Sent<b>${fmtBytes(tx)}</b></div>
<div class="card">Recent errors<b>${errors}</b><a href="/errors">see them</a></div>
<div class="card">Updated<b class="muted small">${new Date(now).toISOString()}</b></div></div>`;
}

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

export function logRows(lines: LogLine[]): Html {
  if (lines.length === 0) return html`<tr><td colspan="4" class="muted">No matching log lines.</td></tr>`;
  return html`${lines.map((l) => {
    const { ts, level, target, msg, ...fields } = l;
    return html`<tr class="level-${level}"><td class="mono">${ts}</td><td>${level}</td><td>${target}</td>
<td>${msg} <span class="mono muted">${Object.entries(fields).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")}</span></td></tr>`;
  })}`;
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

export interface LogFilterForm {
  cid?: string;
  gid?: string;
  rid?: string;
  level?: string;
  target?: string;
}

export function logsPage(f: LogFilterForm, lines: LogLine[]): Html {
  const qs = new URLSearchParams(Object.entries(f).filter(([, v]) => v) as [string, string][]).toString();
  return html`<h1>Logs</h1><form method="get" action="/logs" id="log-filter">
cid <input name="cid" size="9" value="${f.cid ?? ""}"> gid <input name="gid" size="9" value="${f.gid ?? ""}"> rid <input name="rid" size="9" value="${f.rid ?? ""}">
level <select name="level">${["", "trace", "debug", "info", "warn", "error"].map((l) => html`<option value="${l}"${l === (f.level ?? "") ? raw(" selected") : ""}>${l || "any"}</option>`)}</select>
target <input name="target" size="10" value="${f.target ?? ""}"> <button type="submit">Filter</button></form>
<p class="muted">Live tail: newest first, refreshed every 2 s.</p>
<table><thead><tr><th>ts</th><th>level</th><th>target</th><th>message</th></tr></thead>
<tbody id="log-rows" hx-get="/logs/rows?${qs}" hx-trigger="every 2s" hx-swap="innerHTML">${logRows(lines)}</tbody></table>`;
}

export function errorsPage(lines: LogLine[]): Html {
  return html`<h1>Errors</h1><p class="muted">Recent warnings and errors with the context sent to Sentry (when SENTRY_DSN is set).</p>
<table><thead><tr><th>ts</th><th>level</th><th>target</th><th>message</th></tr></thead><tbody>${logRows(lines)}</tbody></table>`;
}

export function auditPage(rows: AuditRow[], total: number, page: number, pageSize: number, q: Record<string, string>): Html {
  const qs = (extra: Record<string, string>) => new URLSearchParams({ ...q, ...extra }).toString();
  const pages = Math.max(1, Math.ceil(total / pageSize));
  return html`<h1>Audit</h1><form method="get" action="/audit">action <input name="action" value="${q.action ?? ""}"> actor <input name="actor" value="${q.actor ?? ""}">
<button>Filter</button> <a href="/audit.csv?${qs({})}">Export CSV</a></form>
<table><thead><tr><th>time</th><th>actor</th><th>action</th><th>subject</th><th>cid</th><th>change</th><th>reason</th></tr></thead><tbody>
${rows.map((r) => html`<tr data-action="${r.action}"><td class="mono">${new Date(r.ts).toISOString()}</td><td>${r.actor}</td><td>${r.action}</td><td class="mono">${r.subject && /^(peer|connection|capture)\./.test(r.action) ? html`<a href="/history/${encodeURIComponent(r.subject)}">${r.subject}</a>` : (r.subject ?? "")}</td>
<td>${r.cid ?? ""}</td><td class="mono muted">${r.before ? `before ${r.before}` : ""} ${r.after ? `after ${r.after}` : ""}</td><td>${r.reason ?? ""}</td></tr>`)}</tbody></table>
<p>Page ${page} of ${pages} (${total} events) ${page > 1 ? html`<a href="/audit?${qs({ page: String(page - 1) })}">previous</a>` : ""} ${page < pages ? html`<a href="/audit?${qs({ page: String(page + 1) })}">next</a>` : ""}</p>`;
}

export function resourcesPage(resources: ResourceView[], csrf: string, errors: Record<string, string>, values: Record<string, string>): Html {
  return html`<h1>Resources</h1><p class="muted">With any resource defined, each peer reaches only the resources it is authorized for.
Resources from the config file are read-only here.</p>
${errors.form ? html`<p class="err" role="alert">${errors.form}</p>` : ""}
<table><thead><tr><th>id</th><th>name</th><th>type</th><th>address</th><th>filters</th><th>authorized</th><th></th></tr></thead><tbody>
${resources.map((r) => html`<tr data-resource="${r.id}"><td class="mono">${r.id}</td><td>${r.name}</td><td>${r.type}</td><td class="mono">${r.address}</td><td class="mono">${r.filters || "all"}</td>
<td>${r.authorizations.map((a) => html`<div class="mono"><a href="/connections/${a.cid}">${a.cid}</a> ${a.expires_at ? `until ${a.expires_at}` : ""}</div>`)}</td>
<td>${r.source === "api" ? html`<form class="inline" method="post" action="/resources/${encodeURIComponent(r.id)}/delete"><input type="hidden" name="_csrf" value="${csrf}"><button>delete</button></form>
<form method="post" action="/resources/${encodeURIComponent(r.id)}/authorize"><input type="hidden" name="_csrf" value="${csrf}"><input name="publicKey" size="20" placeholder="peer public key"> <input name="expiresAt" type="date"> <button>authorize</button></form>` : html`<span class="muted">config file</span>`}</td></tr>`)}
</tbody></table>
<h2>Add a resource</h2><form method="post" action="/resources" id="resource-form"><input type="hidden" name="_csrf" value="${csrf}">
<label>Id <input name="id" value="${values.id ?? ""}"></label><label>Name <input name="name" value="${values.name ?? ""}"></label>
<label>Type <select name="type">${["cidr", "dns", "internet"].map((t) => html`<option${t === values.type ? raw(" selected") : ""}>${t}</option>`)}</select></label>
<label>Address <input name="address" value="${values.address ?? ""}" placeholder="10.50.0.0/16 or *.corp.example"></label>
<label>Filters <input name="filters" value="${values.filters ?? ""}" placeholder="tcp/22, udp/53, icmp (empty: all)"></label>
<button type="submit">Add resource</button></form>`;
}
