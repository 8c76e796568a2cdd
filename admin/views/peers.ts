// The Peers pages: the list (admin peers, searchable and sortable without JS, then the config
// file's peers read-only), the add/edit form, and the client config.
import { html, raw } from "hono/html";
import { parseServedBy } from "../../src/cluster/served-by.ts";
import type { PeerRow } from "../../src/store/index.ts";
import type { FilePeerView } from "../types.ts";
import { ago, type Html } from "./layout.ts";

export const PEER_SORTS = ["name", "created", "handshake"] as const;
export type PeerSort = (typeof PEER_SORTS)[number];
export const SORT_DIRS = ["asc", "desc"] as const;
export type SortDir = (typeof SORT_DIRS)[number];

/** What the list was asked for (already validated) and what a bad value was (to say so). */
export interface PeerListQuery {
  q: string;
  sort: PeerSort;
  dir: SortDir;
  /** Friendly messages for query values that were not understood (the defaults were used). */
  problems: string[];
}

/** A peer row with what the data plane knows of it. */
export type PeerListItem = PeerRow & { lastHandshake: string | null };
export type FilePeerItem = FilePeerView & { lastHandshake: string | null };

export interface PeerFormValues {
  name?: string;
  publicKey?: string;
  allowedIps?: string;
  endpoint?: string;
  persistentKeepalive?: string;
  expiresAt?: string;
  enabled?: boolean;
  /** Cluster mode: gids checked under "Served by" (none = every gateway). */
  servedBy?: string[];
}

/** A gateway a peer can be served by (cluster mode), `self` for the one showing the page. */
export interface GatewayChoice {
  gid: string;
  name: string;
  self?: boolean;
}

function gatewayLabel(gid: string, gateways: readonly GatewayChoice[]): string {
  const g = gateways.find((x) => x.gid === gid);
  return g ? `${g.name}${g.self ? " (this gateway)" : ""}` : `${gid.slice(0, 8)}… (not registered)`;
}

/** Who serves a peer, in words: "every gateway" or the gateways' names. */
export function servedByText(servedBy: string | null, gateways: readonly GatewayChoice[]): string {
  const gids = parseServedBy(servedBy);
  return gids === null ? "every gateway" : gids.length === 0 ? "no gateway (unreadable list)" : gids.map((g) => gatewayLabel(g, gateways)).join(", ");
}

export function servedBySummary(servedBy: string | null, gateways: readonly GatewayChoice[]): Html {
  return html`<p id="served-by">Served by: <b>${servedByText(servedBy, gateways)}</b></p>`;
}

/**
 * "Served by" for the form: one checkbox per gateway, plus any gid the row names that is no longer
 * registered (kept checked, so saving does not drop it silently). The hidden empty value makes an
 * all-unchecked form say "every gateway" rather than "unchanged".
 */
export function servedByField(gateways: readonly GatewayChoice[], checked: readonly string[], error: Html | string, what = "peer"): Html {
  const all = [...gateways, ...checked.filter((g) => !gateways.some((x) => x.gid === g)).map((gid) => ({ gid, name: gid }))];
  return html`<fieldset id="served-by-field"><legend>Served by</legend><input type="hidden" name="servedBy" value="">
${all.map((g) => html`<label class="inline"><input type="checkbox" name="servedBy" value="${g.gid}"${checked.includes(g.gid) ? raw(" checked") : ""}> ${gatewayLabel(g.gid, gateways)}</label> `)}
<p class="muted small">None checked: every gateway serves the ${what}, including gateways added later.</p>${error}</fieldset>`;
}
export function peerForm(opts: { action: string; csrf: string; values: PeerFormValues; errors: Record<string, string>; submit: string; keyHint?: string; gateways?: readonly GatewayChoice[] }): Html {
  const v = opts.values;
  const err = (f: string) => (opts.errors[f] ? html`<span class="field-error" data-field="${f}">${f}: ${opts.errors[f]}</span>` : "");
  return html`<form method="post" action="${opts.action}" id="peer-form"><input type="hidden" name="_csrf" value="${opts.csrf}">
${opts.errors.form ? html`<p class="err" role="alert">${opts.errors.form}</p>` : ""}
<label>Name <input name="name" value="${v.name ?? ""}"> ${err("name")}</label>
<label>Public key <input name="publicKey" size="48" value="${v.publicKey ?? ""}" placeholder="${opts.keyHint ?? ""}"> ${err("publicKey")}</label>
<label>Allowed IPs <input name="allowedIps" value="${v.allowedIps ?? ""}" placeholder="10.99.0.2/32"> ${err("allowedIps")}</label>
<label>Endpoint <input name="endpoint" value="${v.endpoint ?? ""}" placeholder="optional host:port"> ${err("endpoint")}</label>
<label>Persistent keepalive (s) <input name="persistentKeepalive" size="6" value="${v.persistentKeepalive ?? "0"}"> ${err("persistentKeepalive")}</label>
<p class="muted small">With an endpoint and a keepalive, the gateway dials the peer itself (a hostname is resolved when saved).</p>
<label>Expires <input name="expiresAt" type="date" value="${v.expiresAt ?? ""}"> ${err("expiresAt")}</label>
<label><input type="checkbox" name="enabled" value="on"${v.enabled === false ? "" : raw(" checked")}> Enabled</label>
${opts.gateways ? servedByField(opts.gateways, v.servedBy ?? [], err("servedBy")) : ""}
<button type="submit">${opts.submit}</button></form>`;
}

const LABELS: Record<PeerSort, string> = { name: "name", created: "created", handshake: "last handshake" };

/** A column header that sorts by it (again: the other direction), keeping the search. */
function sortHeader(q: PeerListQuery, key: PeerSort): Html {
  const on = q.sort === key;
  const dir: SortDir = on && q.dir === "asc" ? "desc" : on ? "asc" : key === "name" ? "asc" : "desc";
  const qs = new URLSearchParams({ ...(q.q ? { q: q.q } : {}), sort: key, dir }).toString();
  const arrow = on ? (q.dir === "asc" ? " ▲" : " ▼") : "";
  return html`<th${on ? raw(` aria-sort="${q.dir === "asc" ? "ascending" : "descending"}"`) : ""}><a href="/peers?${qs}" data-sort="${key}">${LABELS[key]}${arrow}</a></th>`;
}

export function peersPage(opts: { peers: PeerListItem[]; total: number; filePeers: FilePeerItem[]; fileTotal: number; query: PeerListQuery; csrf: string; form: Html; now: number; gateways?: readonly GatewayChoice[] }): Html {
  const gws = opts.gateways;
  const { query: q, csrf, now } = opts;
  const searching = q.q !== "";
  const storeTable = opts.total === 0
    ? html`<p class="empty" data-testid="peers-empty">No peers yet — add one below.</p>`
    : opts.peers.length === 0
      ? html`<p class="empty" data-testid="peers-no-match">No peer matches “${q.q}”. <a href="/peers">Show all ${opts.total}</a></p>`
      : html`<table id="peer-rows"><thead><tr>${sortHeader(q, "name")}<th>public key</th><th>allowed IPs</th><th>endpoint</th><th>enabled</th>${gws ? html`<th>served by</th>` : ""}<th>expires</th>${sortHeader(q, "created")}${sortHeader(q, "handshake")}<th></th></tr></thead><tbody>
${opts.peers.map((p) => html`<tr data-peer="${p.name}"><td>${p.name}</td><td class="mono">${p.publicKey}</td><td class="mono">${p.allowedIps}</td><td class="mono">${p.endpoint ?? "—"}</td><td>${p.enabled ? "yes" : "no"}</td>${gws ? html`<td data-served-by>${servedByText(p.servedBy, gws)}</td>` : ""}
<td>${p.expiresAt ? new Date(p.expiresAt).toISOString().slice(0, 10) : "never"}</td><td>${new Date(p.createdAt).toISOString().slice(0, 10)}</td><td>${ago(p.lastHandshake, now)}</td>
<td><a href="/peers/${encodeURIComponent(p.id)}">edit</a> · <a href="/history/${encodeURIComponent(p.id)}" title="${p.id}">history</a>${p.clientPrivateKey ? html` · <a href="/peers/${encodeURIComponent(p.id)}/config">config</a>` : ""}
<form class="inline" method="post" action="/peers/${encodeURIComponent(p.id)}/delete"><input type="hidden" name="_csrf" value="${csrf}"><button>delete</button></form></td></tr>`)}
</tbody></table>${searching ? html`<p class="muted">${opts.peers.length} of ${opts.total} peers match “${q.q}”. <a href="/peers">Show all</a></p>` : ""}`;
  const fileTable = opts.fileTotal === 0 ? "" : html`<h2>From the config file</h2>
<p class="muted">Read-only here: change them in the config file and restart the gateway.</p>
${opts.filePeers.length === 0 ? html`<p class="empty">No config file peer matches “${q.q}”.</p>` : html`<table id="file-peer-rows"><thead><tr><th>line</th><th>public key</th><th>allowed IPs</th><th>endpoint</th><th>keepalive</th><th>preshared key</th><th>last handshake</th></tr></thead><tbody>
${opts.filePeers.map((p) => html`<tr data-file-peer="${p.line}"><td>${p.line} <a href="/history/${p.id}" class="mono" title="stable id">${p.id}</a></td><td class="mono">${p.public_key}</td><td class="mono">${p.allowed_ips.join(", ")}</td><td class="mono">${p.endpoint ?? "—"}</td>
<td>${p.persistent_keepalive ? `${p.persistent_keepalive} s` : "off"}</td><td>${p.preshared_key ? "set" : "none"}</td><td>${ago(p.lastHandshake, now)}</td></tr>`)}</tbody></table>`}`;
  return html`<h1>Peers</h1>
${q.problems.map((m) => html`<p class="err" role="alert" data-testid="query-problem">${m}</p>`)}
<form method="get" action="/peers" id="peer-search" class="search"><label class="inline">Search <input name="q" type="search" value="${q.q}" placeholder="name, key or address" size="30"></label>
<input type="hidden" name="sort" value="${q.sort}"><input type="hidden" name="dir" value="${q.dir}"> <button type="submit">Search</button>${searching ? html` <a href="/peers">clear</a>` : ""}</form>
${storeTable}
${fileTable}
<h2>Add a peer</h2><p class="muted">Leave the public key empty to have glassgate generate the client's keys and config.</p>${opts.form}`;
}

/**
 * The host a generated config tells the client to dial, when it can only work on this machine: a
 * loopback address comes from opening the admin through `ssh -L` without GLASSGATE_ENDPOINT set.
 */
export function loopbackEndpoint(config: string): string | undefined {
  const endpoint = /^Endpoint\s*=\s*(\S+)\s*$/m.exec(config)?.[1];
  if (!endpoint) return undefined;
  const host = endpoint.replace(/:\d+$/, "").replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\./.test(host) ? endpoint : undefined;
}

export function clientConfigPage(name: string, config: string, qrSvg: string): Html {
  const loopback = loopbackEndpoint(config);
  return html`<h1>Client config for ${name}</h1>${loopback ? html`<p class="notice" id="endpoint-warning">This config tells the client to dial <code>${loopback}</code>, which only works on this machine:
the gateway does not know its public address (<code>GLASSGATE_ENDPOINT</code> is not set) and you opened the admin through a local address.
Restart the gateway with <code>GLASSGATE_ENDPOINT=&lt;public host or IP&gt;:&lt;UDP port&gt;</code>, or edit <code>Endpoint</code> before importing.</p>` : ""}<p>Import into a WireGuard app (scan the QR code on a phone) or save as <code>${name.replace(/[^A-Za-z0-9_-]/g, "_")}.conf</code> for wg-quick.</p>
<div class="config-layout"><pre id="client-config" class="config-text">${config}</pre><div>${raw(qrSvg)}</div></div>`;
}
