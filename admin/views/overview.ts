// Overview: the first page an operator sees.
import { html } from "hono/html";
import type { ConnectionView } from "../../src/telemetry/view.ts";
import { fmtBytes, type Html } from "./layout.ts";

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

