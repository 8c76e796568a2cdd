// The dev portal's one page: gateways, clients, policies and flows, with forms to authorize,
// revoke and move an expiry. Server-rendered, no script: every action is a form POST answered
// with a redirect back here.
import type { DevPortal } from "./portal.ts";

const esc = (s: unknown) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const time = (unix: number) => new Date(unix * 1000).toISOString().replace(".000Z", "Z");

export function renderPage(p: DevPortal, notice?: string): string {
  const session = (side: "gateway" | "client", id: string) => p.sessions.get(`${side}:${id}`);
  const state = (side: "gateway" | "client", id: string) => {
    const s = session(side, id);
    return s ? (s.joined ? "joined" : "connected") : "offline";
  };
  const options = (items: { id: string; name: string }[]) => items.map((i) => `<option value="${esc(i.id)}">${esc(i.name)} (${esc(i.id)})</option>`).join("");
  const devices = (side: "gateway" | "client", list: { id: string; name: string }[]) =>
    list
      .map((d) => {
        const s = session(side, d.id);
        return `<tr><td>${esc(d.id)}</td><td>${esc(d.name)}</td><td>${state(side, d.id)}</td><td>${esc(s?.externalId)}</td><td><code>${esc(s?.publicKey)}</code></td><td>${esc(s?.userAgent)}</td><td>${s?.malformed ?? ""}</td></tr>`;
      })
      .join("");
  const policies = p
    .policyList()
    .map((x) => `<tr><td>${esc(x.client)}</td><td>${esc(x.resource)}</td><td>${x.expires_in ? `${x.expires_in} s` : "24 h (default)"}</td><td>${revokeForm(x.client, x.resource)}</td></tr>`)
    .join("");
  const flows = [...p.flows.values()]
    .map(
      (f) =>
        `<tr><td>${esc(f.clientId)}</td><td>${esc(f.resourceId)}</td><td>${esc(f.gatewayId)}</td><td>${f.status}</td><td>${time(f.expiresAt)}</td>` +
        `<td><form method="post" action="/flows/expiry"><input type="hidden" name="client" value="${esc(f.clientId)}"><input type="hidden" name="resource" value="${esc(f.resourceId)}">` +
        `<input name="expires_in" type="number" min="1" value="60" aria-label="seconds from now"> s <button>Set expiry</button></form></td><td>${revokeForm(f.clientId, f.resourceId)}</td></tr>`,
    )
    .join("");
  const recent = p.records
    .slice(-30)
    .reverse()
    .map((r) => `<tr><td>${new Date(r.at).toISOString()}</td><td>${r.dir}</td><td>${r.side} ${esc(r.id)}</td><td>${esc(r.event)}</td></tr>`)
    .join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>glassgate dev portal</title>
<style>body{font:14px system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;margin-bottom:1.5rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}code{font-size:12px}.notice{background:#eef;padding:.5rem}</style></head><body>
<h1>glassgate dev portal</h1>
${notice ? `<p class="notice">${esc(notice)}</p>` : ""}
<h2>Gateways</h2><table><tr><th>id</th><th>name</th><th>state</th><th>external_id</th><th>public key</th><th>User-Agent</th><th>malformed</th></tr>${devices("gateway", p.seed.gateways)}</table>
<h2>Clients</h2><table><tr><th>id</th><th>name</th><th>state</th><th>external_id</th><th>public key</th><th>User-Agent</th><th>malformed</th></tr>${devices("client", p.seed.clients)}</table>
<h2>Policies</h2><table><tr><th>client</th><th>resource</th><th>flow lifetime</th><th></th></tr>${policies}</table>
<form method="post" action="/policies"><label>Client <select name="client">${options(p.seed.clients)}</select></label>
<label>Resource <select name="resource">${options(p.seed.resources.map((r) => ({ id: r.id, name: String(r.name ?? r.id) })))}</select></label>
<label>Lifetime (s, optional) <input name="expires_in" type="number" min="1"></label> <button>Authorize</button></form>
<h2>Flows</h2><table><tr><th>client</th><th>resource</th><th>gateway</th><th>status</th><th>expires</th><th></th><th></th></tr>${flows}</table>
<h2>Recent messages</h2><table><tr><th>at</th><th>dir</th><th>device</th><th>event</th></tr>${recent}</table>
</body></html>`;
}

function revokeForm(client: string, resource: string): string {
  return `<form method="post" action="/policies/revoke"><input type="hidden" name="client" value="${esc(client)}"><input type="hidden" name="resource" value="${esc(resource)}"><button>Revoke</button></form>`;
}
