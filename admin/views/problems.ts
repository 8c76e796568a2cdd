// A named problem as the operator sees it: what is wrong, the likely cause (a guess, said as one)
// and the fix to try. hono/html escapes every interpolation.
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { ProblemView } from "../types.ts";
import { utcTime } from "./layout.ts";

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export function problemBanner(p: ProblemView): Html {
  return html`<section class="problem-banner" role="alert" data-problem="${p.kind}">
<h2>${p.title}</h2>
<p><b>Likely cause:</b> ${p.likely_cause}</p>
<p><b>Fix to try:</b> ${p.fix}</p>
<p class="small muted">${problemSeen(p)}${p.source ? html` · source <span class="mono">${p.source}</span>` : ""}</p>
</section>`;
}

/** How often and when a problem was seen, in the admin's time format (UTC, local time beside). */
export function problemSeen(p: ProblemView): Html {
  if (p.count === 1 || p.since === p.last_seen) return html`Seen ${p.count === 1 ? "once" : `${p.count}×`} at ${utcTime(p.last_seen)}`;
  return html`Seen ${p.count}×, first ${utcTime(p.since)}, last ${utcTime(p.last_seen)}`;
}

/** Every problem of one connection, as banners (nothing when it has none). */
export function problemBanners(problems: ProblemView[], cid: number): Html {
  return html`${problems.filter((p) => p.cid === cid).map(problemBanner)}`;
}
