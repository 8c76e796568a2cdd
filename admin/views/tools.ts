// Operator tools: the policy tester's form and decision path, and the connection page's packet
// capture panel. hono/html escapes every interpolation.
import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { PolicyTestResult } from "../../src/standalone/policy-test.ts";

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export interface PolicyForm {
  peer?: string;
  dst?: string;
  port?: string;
  protocol?: string;
}

const REASON_TEXT: Record<string, string> = {
  no_resource: "no resource covers the destination",
  not_authorized: "the peer is not authorized for the resource",
  authorization_expired: "the authorization has expired",
  filtered: "the resource's filters do not allow this protocol/port",
  outbound_icmp_error: "ICMP errors from clients are never forwarded",
  not_public: "the internet resource covers public addresses only",
  peer_not_in_data_plane: "the peer is not in the data plane",
  name_not_resolved: "the name has no proxy address yet",
};

export function policyTesterPage(f: PolicyForm, peers: { label: string; value: string }[], result?: PolicyTestResult, error?: { field: string; message: string }): Html {
  return html`<h1>Policy tester</h1>
<p class="muted">May a peer reach an address now? Answered by the same code that decides every packet the peer sends.</p>
<form method="get" action="/tools/policy" id="policy-form" class="tool-form">
<label>Peer <input name="peer" list="peer-names" value="${f.peer ?? ""}" placeholder="name, public key or cid" required></label>
<datalist id="peer-names">${peers.map((p) => html`<option value="${p.value}">${p.label}</option>`)}</datalist>
<label>Destination <input name="dst" value="${f.dst ?? ""}" placeholder="10.0.0.5 or app.corp.example" required></label>
<label>Protocol <select name="protocol">${["tcp", "udp", "icmp"].map((p) => html`<option${p === (f.protocol ?? "tcp") ? raw(" selected") : ""}>${p}</option>`)}</select></label>
<label>Port <input name="port" size="6" value="${f.port ?? ""}" placeholder="443"></label>
<button type="submit">Test</button></form>
${error ? html`<p class="err" role="alert" data-field="${error.field}">${error.message}</p>` : ""}
${result ? policyResult(result) : ""}`;
}

export function policyResult(r: PolicyTestResult): Html {
  const who = r.peer.name ? `${r.peer.name} (cid ${r.peer.cid ?? "—"})` : `cid ${r.peer.cid}`;
  const what = `${r.packet.protocol}${r.packet.port !== undefined ? `/${r.packet.port}` : ""}`;
  return html`<section class="verdict ${r.verdict}" id="policy-verdict" data-verdict="${r.verdict}" data-reason="${r.reason ?? ""}">
<h2>${r.verdict === "allow" ? "Allowed" : "Denied"}${r.reason ? html`: <span class="reason">${REASON_TEXT[r.reason] ?? r.reason}</span> <code>${r.reason}</code>` : ""}</h2>
<p>${who} → <span class="mono">${r.packet.dst}</span> ${what}${r.packet.src ? html` <span class="muted">(probe from ${r.packet.src})</span>` : ""}${r.resource ? html` · resource <a href="/resources" class="mono">${r.resource}</a>` : ""} · <span class="muted">at ${r.at}</span></p>
<h3>Decision path</h3><ol class="decision-path">${r.steps.map((s) => html`<li class="step ${s.outcome}" data-step="${s.step}"><span class="pill">${s.outcome === "pass" ? "✓" : "✗"} ${s.step.replaceAll("_", " ")}</span> ${s.detail}</li>`)}</ol></section>`;
}
