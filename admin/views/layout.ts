// The page frame and the helpers every page shares (hono/html escapes every interpolation).
// Pages are whole documents; the parts that refresh live are fragments htmx swaps in.
// Views import only types from the rest of the project: they render, nothing else.
import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

const NAV = [["/", "Overview"], ["/connections", "Connections"], ["/peers", "Peers"], ["/resources", "Resources"], ["/logs", "Logs"], ["/errors", "Errors"], ["/audit", "Audit"], ["/gateways", "Gateways"], ["/problems", "Problems"], ["/relays", "Relays"], ["/tools/policy", "Policy tester"]] as const;

export function layout(opts: { title: string; path: string; user?: string; csrf?: string }, body: Html): Html {
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${opts.title} · glassgate</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="stylesheet" href="/static/app.css">
<meta name="htmx-config" content='{"includeIndicatorStyles":false}'><script src="/static/htmx.min.js"></script><script src="/static/local-time.js" defer></script></head>
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

export function ago(iso: string | null, now: number): string {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}


/** Whole seconds/minutes/hours/days, two units at most: "3 d 4 h", "12 min 5 s". */
export function fmtDuration(ms: number): string {
  let s = Math.max(0, Math.floor(ms / 1000));
  const parts: [number, string][] = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
  const out: string[] = [];
  for (const [size, unit] of parts) {
    if (s >= size || (unit === "s" && out.length === 0)) {
      out.push(`${Math.floor(s / size)} ${unit}`);
      s %= size;
    }
    if (out.length === 2) break;
  }
  return out.join(" ");
}

/**
 * A moment in UTC, machine-readable: static/local-time.js adds the browser's local time beside
 * it (no inline script under the CSP). Accepts Unix ms or an ISO string.
 */
export function utcTime(t: number | string, millis = false): Html {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return html`<span class="muted">${String(t)}</span>`;
  const iso = d.toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 10)} ${iso.slice(11, millis ? 23 : 19)} UTC</time>`;
}

/** A connection id, linked to its page. */
export function cidLink(cid: number): Html {
  return html`<a class="cid" href="/connections/${cid}">${cid}</a>`;
}
