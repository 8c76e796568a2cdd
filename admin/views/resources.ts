// Resources: what peers may reach, with their authorizations.
import { html, raw } from "hono/html";
import type { ResourceView } from "../types.ts";
import type { Html } from "./layout.ts";
import { servedByField, servedByText, type GatewayChoice } from "./peers.ts";

/**
 * Cluster mode: the gateways to choose from, each stored resource's served_by, the form's checked
 * gids, and the shared resources this gateway does not serve (not in its policy, listed anyway).
 */
export interface ResourceCluster {
  gateways: readonly GatewayChoice[];
  servedBy: ReadonlyMap<string, string | null>;
  checked: readonly string[];
  elsewhere: readonly { id: string; name: string; type: string; address: string | null }[];
}

export function resourcesPage(resources: ResourceView[], csrf: string, errors: Record<string, string>, values: Record<string, string>, cluster?: ResourceCluster): Html {
  return html`<h1>Resources</h1><p class="muted">With any resource defined, each peer reaches only the resources it is authorized for.
Resources from the config file are read-only here.</p>
${errors.form ? html`<p class="err" role="alert">${errors.form}</p>` : ""}
${resources.length === 0 ? html`<p class="empty" data-testid="resources-empty">No resources: every peer reaches everything its AllowedIPs route (a plain WireGuard server). Add one below to restrict access.</p>` : html`<table><thead><tr><th>id</th><th>name</th><th>type</th><th>address</th><th>filters</th><th>authorized</th>${cluster ? html`<th>served by</th>` : ""}<th></th></tr></thead><tbody>
${resources.map((r) => html`<tr data-resource="${r.id}" id="${r.id}"><td class="mono">${r.id}</td><td>${r.name}</td><td>${r.type}</td><td class="mono">${r.address}</td><td class="mono">${r.filters || "all"}</td>
<td>${r.authorizations.map((a) => html`<div class="mono"><a href="/connections/${a.cid}">${a.cid}</a> ${a.expires_at ? `until ${a.expires_at}` : ""}</div>`)}</td>
${cluster ? html`<td data-served-by>${r.source === "api" ? servedByText(cluster.servedBy.get(r.id) ?? null, cluster.gateways) : "this gateway (config file)"}</td>` : ""}
<td>${r.source === "api" ? html`<form class="inline" method="post" action="/resources/${encodeURIComponent(r.id)}/delete"><input type="hidden" name="_csrf" value="${csrf}"><button>delete</button></form>
<form method="post" action="/resources/${encodeURIComponent(r.id)}/authorize"><input type="hidden" name="_csrf" value="${csrf}"><input name="publicKey" size="20" placeholder="peer public key"> <input name="expiresAt" type="date"> <button>authorize</button></form>` : html`<span class="muted">config file</span>`}</td></tr>`)}
</tbody></table>`}
${cluster && cluster.elsewhere.length > 0 ? html`<h2>Served by other gateways only</h2><p class="muted">Shared resources this gateway does not enforce.</p><table id="resources-elsewhere"><thead><tr><th>id</th><th>name</th><th>type</th><th>address</th><th>served by</th><th></th></tr></thead><tbody>
${cluster.elsewhere.map((r) => html`<tr data-resource-elsewhere="${r.id}"><td class="mono">${r.id}</td><td>${r.name}</td><td>${r.type}</td><td class="mono">${r.address ?? ""}</td><td data-served-by>${servedByText(cluster.servedBy.get(r.id) ?? null, cluster.gateways)}</td>
<td><form class="inline" method="post" action="/resources/${encodeURIComponent(r.id)}/delete"><input type="hidden" name="_csrf" value="${csrf}"><button>delete</button></form></td></tr>`)}
</tbody></table>` : ""}
<h2>Add a resource</h2><form method="post" action="/resources" id="resource-form"><input type="hidden" name="_csrf" value="${csrf}">
<label>Id <input name="id" value="${values.id ?? ""}"></label><label>Name <input name="name" value="${values.name ?? ""}"></label>
<label>Type <select name="type">${["cidr", "dns", "internet"].map((t) => html`<option${t === values.type ? raw(" selected") : ""}>${t}</option>`)}</select></label>
<label>Address <input name="address" value="${values.address ?? ""}" placeholder="10.50.0.0/16 or *.corp.example"></label>
<label>Filters <input name="filters" value="${values.filters ?? ""}" placeholder="tcp/22, udp/53, icmp (empty: all)"></label>
${cluster ? servedByField(cluster.gateways, cluster.checked, "", "resource") : ""}
<button type="submit">Add resource</button></form>`;
}
