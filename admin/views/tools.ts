// Operator tools: the policy tester's form and decision path, and the connection page's packet
// capture panel. hono/html escapes every interpolation.
import { html, raw } from "hono/html";
import type { CaptureLimits, CaptureStatus } from "../../src/io/capture.ts";
import type { PolicyTestResult } from "../../src/standalone/policy-test.ts";
import { fmtBytes, type Html } from "./layout.ts";

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
<label>Peer <input name="peer" list="peer-names" size="46" value="${f.peer ?? ""}" placeholder="name, public key or cid" required></label>
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

/** The capture panel on a connection page; while a capture runs it refreshes itself every second. */
export function capturePanel(cid: number, s: CaptureStatus | undefined, csrf: string, defaults: CaptureLimits, caps: CaptureLimits, error?: string): Html {
  const running = s?.state === "running";
  const download = s && s.packets > 0 ? html` <a href="/connections/${cid}/capture.pcap" id="capture-download" download>download pcap</a>` : "";
  return html`<section id="capture" data-capture="${s?.state ?? "none"}"${running ? raw(` hx-get="/connections/${cid}/capture/panel" hx-trigger="every 1s" hx-swap="outerHTML"`) : ""}>
<h2>Packet capture</h2>
<p class="muted">Inner traffic of this connection (decrypted client → gateway, and gateway → client before encryption), as a pcap file for tcpdump or Wireshark. Opt-in, bounded, audited.</p>
${error ? html`<p class="err" role="alert">${error}</p>` : ""}
${s ? html`<p class="capture-status ${s.state}">${running ? html`<b>Capturing</b>` : html`<b>Finished</b> (${STOP_TEXT[s.stop_reason ?? "stopped"]}${s.stopped_by && s.stopped_by !== "gateway" ? ` by ${s.stopped_by}` : ""})`}:
<span data-testid="capture-packets">${s.packets}</span> of ${s.limits.max_packets} packets, ${fmtBytes(s.bytes)} of ${fmtBytes(s.limits.max_bytes)};
started ${s.started_at} by ${s.started_by}${running ? `, ends by ${s.ends_at}` : s.stopped_at ? `, stopped ${s.stopped_at}` : ""}.${download}</p>` : ""}
${running
    ? html`<form method="post" action="/connections/${cid}/capture/stop" class="inline"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit" id="capture-stop">Stop capture</button></form>`
    : html`<form method="post" action="/connections/${cid}/capture" id="capture-form" class="tool-form"><input type="hidden" name="_csrf" value="${csrf}">
<label>Max packets <input name="max_packets" size="7" value="${defaults.maxPackets}" title="at most ${caps.maxPackets}"></label>
<label>Max bytes <input name="max_bytes" size="9" value="${defaults.maxBytes}" title="at most ${caps.maxBytes}"></label>
<label>Max seconds <input name="max_seconds" size="5" value="${defaults.maxSeconds}" title="at most ${caps.maxSeconds}"></label>
<button type="submit" id="capture-start">Start capture</button></form>`}</section>`;
}

const STOP_TEXT: Record<string, string> = {
  max_packets: "packet limit reached",
  max_bytes: "byte limit reached",
  max_seconds: "time limit reached",
  stopped: "stopped",
  connection_gone: "the connection left the data plane",
  shutdown: "the gateway shut down",
};
