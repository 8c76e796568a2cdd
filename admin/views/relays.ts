// The Relays page (portal mode): each TURN relay the portal handed the gateway — its allocation's
// state, the relayed and server-reflexive addresses it gave, how long until it lapses, the channels
// bound to clients with the bytes through each, and why allocations failed. A snapshot from
// GatewayNode.relayViews; refreshed every 5 s.
import { html } from "hono/html";
import type { RelayView } from "../../src/node/relays.ts";
import { fmtBytes, fmtDuration } from "./layout.ts";

type Html = ReturnType<typeof html>;

export function relaysPage(relays: RelayView[] | undefined): Html {
  return html`<h1>Relays</h1>${relaysLive(relays)}`;
}

export function relaysLive(relays: RelayView[] | undefined): Html {
  if (relays === undefined) {
    return html`<div id="relays-live"><p class="empty" data-testid="relays-none">This gateway runs standalone: clients reach it on its WireGuard port, no TURN relays are in use. In portal mode the portal hands out relays and they appear here.</p></div>`;
  }
  if (relays.length === 0) return html`<div id="relays-live" hx-get="/relays/live" hx-trigger="every 5s" hx-swap="outerHTML"><p class="empty" data-testid="relays-empty">No relays yet: the portal has not sent any.</p></div>`;
  return html`<div id="relays-live" hx-get="/relays/live" hx-trigger="every 5s" hx-swap="outerHTML">
<table data-testid="relays"><thead><tr><th>relay</th><th>server</th><th>allocation</th><th>relayed addresses</th><th>our address (srflx)</th><th>lapses in</th><th>credentials</th><th>relayed</th><th>failures</th></tr></thead><tbody>
${relays.map((r) => html`<tr data-relay="${r.id}"><td class="mono">${r.id}</td><td class="mono">${r.server ?? r.servers.join(" ")}</td><td><span class="pill ${r.state === "allocated" ? "connected" : r.state === "failed" ? "failed" : "idle"}">${r.state}</span></td>
<td class="mono">${r.relayed.join(" ") || "—"}</td><td class="mono">${r.srflx ?? "—"}</td><td>${r.expires_in_s === null ? "—" : fmtDuration(r.expires_in_s * 1000)}</td>
<td>${r.credentials_expire_in_s === null ? "—" : r.credentials_expire_in_s < 0 ? "expired" : `expire in ${fmtDuration(r.credentials_expire_in_s * 1000)}`}</td>
<td>${fmtBytes(r.relayed_bytes.sent)} out · ${fmtBytes(r.relayed_bytes.received)} in</td>
<td>${Object.entries(r.failures).map(([k, n]) => `${k} ${n}`).join(", ") || "—"}</td></tr>`)}
</tbody></table>
<h2>Channels</h2>${relays.some((r) => r.channels.length) ? html`<table data-testid="channels"><thead><tr><th>relay</th><th>channel</th><th>client address</th><th>bound</th><th>sent</th><th>received</th></tr></thead><tbody>
${relays.flatMap((r) => r.channels.map((ch) => html`<tr><td class="mono">${r.id}</td><td class="mono">0x${ch.number.toString(16)}</td><td class="mono">${ch.peer}</td><td>${ch.bound ? "yes" : "binding…"}</td><td>${fmtBytes(ch.sent_bytes)}</td><td>${fmtBytes(ch.received_bytes)}</td></tr>`))}
</tbody></table>` : html`<p class="empty">No channels: no client is reached through a relay.</p>`}</div>`;
}
