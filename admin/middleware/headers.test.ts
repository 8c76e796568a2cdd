// Headers on every response, and pages that need no inline script or style under them.
import { describe, expect, test } from "bun:test";
import { BASE, ENV_TOKEN, login, setup } from "../testing.ts";

describe("security headers", () => {
  test("every response carries CSP, nosniff, Referrer-Policy and frame denial", async () => {
    const { app } = setup({ metrics: () => { throw new Error("boom"); } });
    const bearer = { authorization: `Bearer ${ENV_TOKEN}` };
    const responses = [
      await app.request("/login"), await app.request("/healthz"), await app.request("/static/htmx.min.js"), await app.request("/static/app.css"),
      await app.request("/nope", { headers: bearer }), await app.request("/api/peers"), await app.request("/connections", { headers: { accept: "text/html" } }),
      await app.request("/metrics", { headers: bearer }), await app.request("/api/logs?limit=-1", { headers: bearer }),
      await app.request("/login", { method: "POST", body: "x".repeat(10_000) }), await app.request("/login", { method: "POST", headers: { origin: "null" } }),
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 404, 401, 302, 500, 400, 413, 403]);
    for (const r of responses) {
      const csp = r.headers.get("content-security-policy")!;
      for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"]) expect(csp).toContain(d);
      expect(csp).not.toContain("unsafe");
      expect(r.headers.get("x-content-type-options")).toBe("nosniff");
      expect(r.headers.get("referrer-policy")).toBe("same-origin");
      expect(r.headers.get("x-frame-options")).toBe("DENY");
    }
  });

  test("no page has inline script, event handler attribute or inline style (the CSP would block them)", async () => {
    // Facts with a few rate samples, so the Overview draws its charts (SVG) too.
    const throughput = [1, 2, 3].map((i) => ({ ts: Date.now() - (3 - i) * 5000, interval_s: 5, rx_bytes_per_s: 100 * i, tx_bytes_per_s: 50, handshakes: i, handshake_failures: 0 }));
    const ctx = setup({ facts: () => ({ public_key: "K=", udp_port: 52625, version: "0", gid: "g", started_at: new Date().toISOString(), aead: "noble", udp_buffers: { recv: 1, send: 1 }, queue_depths: { udp: 0, tun: 0 }, unattributed_drops: {}, traffic_sample_seconds: 60, throughput }) });
    const auth = await login(ctx.app, ctx.store);
    await ctx.app.request("/peers", { method: "POST", headers: { cookie: auth.cookie, origin: BASE }, body: new URLSearchParams({ _csrf: auth.csrf, name: "phone", publicKey: "", allowedIps: "10.99.0.9/32", enabled: "on" }) });
    const peer = ctx.store.peers.list()[0]!;
    ctx.store.resources.upsert({ type: "cidr", id: "lan", address: "10.50.0.0/16" }, "test");
    const pages = ["/", "/overview/live", "/connections", "/connections/rows", "/connections/3428714", "/connections/3428714/live", "/logs", "/logs/rows", "/errors", "/audit", "/peers", `/peers/${peer.id}`, `/peers/${peer.id}/config`, "/resources"];
    const htmls = await Promise.all(pages.map(async (p) => (await ctx.app.request(p, { headers: { cookie: auth.cookie, accept: "text/html" } })).text()));
    htmls.push(await (await ctx.app.request("/login")).text());
    for (const html of htmls) {
      expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/i);
      expect(html).not.toMatch(/\son[a-z]+\s*=/i);
      expect(html).not.toMatch(/\sstyle\s*=|<style/i);
    }
    expect(htmls[0]).toContain("<svg");
    expect(htmls[0]).toContain('<link rel="stylesheet" href="/static/app.css">');
    expect(htmls[0]).toContain(`<meta name="htmx-config" content='{"includeIndicatorStyles":false}'>`);
  });
});
