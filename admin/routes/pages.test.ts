import { beforeEach, describe, expect, test } from "bun:test";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import type { ConnectionView } from "../../src/telemetry/view.ts";
import { LogRing } from "../../src/telemetry/log-ring.ts";
import { login, setup } from "../testing.ts";
import { overview } from "../views/overview.ts";
import { recentWarnings } from "./pages.ts";
import type { GatewayFacts, ProblemView } from "../types.ts";

const newKey = () => encodeKey(publicKeyOf(generatePrivateKey()));
const conn = (cid: number, over: Partial<ConnectionView>): ConnectionView => ({
  cid, public_key: newKey(), endpoint: null, sessions: [], last_handshake: null, rx_bytes: 0, tx_bytes: 0, rx_packets: 0, tx_packets: 0,
  handshakes: { initiated: 0, completed: 0, failed: 0 }, allowed_ips: [`10.99.1.${cid % 250}/32`], drops: {}, state: "idle", state_since: "2026-11-29T11:00:00.000Z", ...over,
});

describe("pages", () => {
  let ctx: ReturnType<typeof setup>;
  let auth: { cookie: string; csrf: string };
  const problems: ProblemView[] = [];
  const FACTS: GatewayFacts = {
    public_key: "GW=", udp_port: 52625, version: "1.2.3", gid: "gid-1", started_at: new Date(Date.now() - 65_000).toISOString(), aead: "noble",
    udp_buffers: { recv: 1024, send: 2048 }, queue_depths: { udp: 0, tun: 1 }, unattributed_drops: { unknown_session: 2 }, traffic_sample_seconds: 60, throughput: [],
  };
  let facts: GatewayFacts;
  beforeEach(async () => {
    problems.length = 0;
    facts = { ...FACTS };
    ctx = setup({ problems: () => problems, facts: () => facts });
    auth = await login(ctx.app, ctx.store);
  });
  const get = async (path: string) => {
    const r = await ctx.app.request(path, { headers: { cookie: auth.cookie, accept: "text/html" } });
    return { status: r.status, text: await r.text() };
  };
  const cidsIn = (html: string) => [...html.matchAll(/<tr data-cid="(\d+)"/g)].map((m) => Number(m[1]));

  describe("connections", () => {
    beforeEach(() => {
      ctx.conns.push(conn(10, { rx_bytes: 500, state: "handshaking", endpoint: "198.51.100.4:4000" }), conn(20, { rx_bytes: 9000 }));
      ctx.store.peers.create({ name: "zeta-laptop", publicKey: ctx.conns[2]!.public_key, allowedIps: "10.99.1.20/32", persistentKeepalive: 0, enabled: true }, "test");
    });

    test("search finds a connection by peer name, endpoint or state, and says when nothing matches", async () => {
      expect(cidsIn((await get("/connections?q=ZETA")).text)).toEqual([20]);
      expect(cidsIn((await get("/connections?q=198.51.100")).text)).toEqual([10]);
      expect(cidsIn((await get("/connections?q=handshaking")).text)).toEqual([10]);
      const none = (await get("/connections?q=nobody")).text;
      expect(cidsIn(none)).toEqual([]);
      expect(none).toContain('data-testid="connections-no-match"');
      expect(none).toContain("Show all 3");
    });

    test("sorting by received bytes, both ways; the live rows keep the same query", async () => {
      expect(cidsIn((await get("/connections?sort=rx&dir=desc")).text)).toEqual([20, 3428714, 10]);
      expect(cidsIn((await get("/connections?sort=rx&dir=asc")).text)).toEqual([10, 3428714, 20]);
      const page = (await get("/connections?q=99&sort=rx&dir=asc")).text;
      expect(page).toContain('hx-get="/connections/rows?q=99&amp;sort=rx&amp;dir=asc"');
      expect(cidsIn((await get("/connections/rows?q=zeta")).text)).toEqual([20]);
    });

    test("a sort value not understood falls back to the default and says so (not a 400)", async () => {
      const r = await get("/connections?sort=bogus");
      expect(r.status).toBe(200);
      expect(r.text).toContain('data-testid="query-problem"');
      expect(cidsIn(r.text)).toEqual([10, 20, 3428714]);
    });

    test("with no peers in the data plane the list says where to add one", async () => {
      ctx.conns.length = 0;
      expect((await get("/connections")).text).toContain('data-testid="connections-empty"');
    });
  });

  test("a connection's page refreshes its live part; the fragment is not a whole page", async () => {
    const page = (await get("/connections/3428714")).text;
    expect(page).toContain('hx-get="/connections/3428714/live" hx-trigger="every 2s"');
    ctx.conns[0]!.rx_bytes = 5 * 1024 * 1024;
    const live = await get("/connections/3428714/live");
    expect(live.status).toBe(200);
    expect(live.text).toContain("5.0 MiB received");
    expect(live.text).not.toContain("<html");
    // Gone while the page is open: the fragment says so (2xx, so htmx swaps it) and stops polling.
    ctx.conns.length = 0;
    const gone = await get("/connections/3428714/live");
    expect(gone.status).toBe(200);
    expect(gone.text).toContain('data-testid="connection-gone"');
    expect(gone.text).not.toContain("hx-trigger");
    expect((await get("/connections/3428714")).status).toBe(404);
  });

  test("a connection's stored traffic is charted as a rate with axes, at the gateway's sample interval", async () => {
    facts.traffic_sample_seconds = 10;
    const key = ctx.conns[0]!.public_key;
    const t = Date.now() - 12_000; // one interval and a bit ago: the next sample is not due yet
    ctx.store.traffic.sample(t - 10_000, [{ publicKey: key, rxBytes: 0, txBytes: 0 }]);
    ctx.store.traffic.sample(t, [{ publicKey: key, rxBytes: 12_500, txBytes: 0 }]);
    const one = (await get("/connections/3428714")).text;
    expect(one).toContain("One sample so far");
    expect(one).toContain("12.2 KiB received, 0 B sent in 10 s");
    ctx.store.traffic.sample(t + 10_000, [{ publicKey: key, rxBytes: 25_000, txBytes: 1250 }]);
    const two = (await get("/connections/3428714")).text;
    expect(two).toContain('aria-label="Traffic, last 24 h (average per 10 s sample)"');
    expect(two).toContain(">10 kbit/s</text>"); // 12 500 B in 10 s = 10 kbit/s
    expect(two).toContain("time (UTC)");
  });

  test("overview shows facts and problems from the gateway, and refreshes as a fragment", async () => {
    problems.push({ kind: "never_connected", cid: 3428714, public_key: null, source: null, title: "Never connected", likely_cause: "c", fix: "f", since: new Date().toISOString(), last_seen: new Date().toISOString(), count: 1 });
    const page = (await get("/")).text;
    expect(page).toContain('data-fact="version">1.2.3<');
    expect(page).toContain("Never connected");
    expect(page).toContain('data-reason="unknown_session"');
    const live = (await get("/overview/live")).text;
    expect(live).toStartWith('<div id="overview-live"');
    expect(live).toMatch(/data-fact="uptime">\d+ min \d+ s \(since <time/);
  });

  test("Overview counts warnings of the last 24 h only, not those kept from earlier runs, and says so", async () => {
    const at = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();
    const line = (level: "info" | "warn" | "error", msAgo: number) => ctx.logs.sink({ ts: at(msAgo), level, target: "tunnel", msg: `${level} ${msAgo}` });
    for (let i = 0; i < 5; i++) line("warn", 3 * 86400_000 + i); // a run three days ago
    line("error", 25 * 3600_000);
    line("warn", 60_000);
    line("error", 23 * 3600_000);
    line("info", 1000);
    const page = (await get("/")).text;
    expect(page).toContain("Warnings, last 24 h");
    expect(page).toMatch(/data-testid="warning-count">2</);
  });

  test("beyond 1000 warnings in a day the count says 1000+", async () => {
    const big = new LogRing(1500);
    for (let i = 0; i < 1200; i++) big.sink({ ts: new Date(Date.now() - 1000).toISOString(), level: "warn", target: "t", msg: "w" });
    const n = recentWarnings(big, Date.now());
    expect(n).toBe(1000);
    expect(String(await overview({ conns: [], problems: [], peers: [], errors: n, now: Date.now() }))).toContain('data-testid="warning-count">1000+<');
  });

  test("cids in logs and errors link to their connection", async () => {
    ctx.log.log("warn", "tunnel", "handshake gave up", { cid: 3428714, attempts: 18 });
    for (const path of ["/logs", "/logs/rows", "/errors"]) {
      const text = (await get(path)).text;
      expect(text).toContain('cid=<a class="cid" href="/connections/3428714">3428714</a>');
      expect(text).toMatch(/<time datetime="[^"]+Z">/);
    }
  });

  test("audit changes are collapsed behind a one-line summary; subject and cid are links", async () => {
    const p = ctx.store.peers.create({ name: "laptop", publicKey: newKey(), allowedIps: "10.99.0.40/32", persistentKeepalive: 0, enabled: true }, "admin:alice");
    ctx.store.peers.update(p.id, { enabled: false }, "admin:alice");
    ctx.store.audit.record({ actor: "gateway", action: "connection.established", cid: 3428714, subject: p.publicKey, reason: "from 192.0.2.7:51820" });
    const text = (await get("/audit")).text;
    expect(text).toContain('<table class="audit">');
    expect(text).toMatch(/<details><summary>enabled: true → false<\/summary>/);
    // peer.* and connection.* rows share the peer's public key: both lead to its history and trail.
    expect(text.split(`href="/history/${encodeURIComponent(p.publicKey)}"`).length - 1).toBe(3);
    expect(text).toContain(`href="/audit?peer=${encodeURIComponent(p.publicKey)}"`);
    expect(text).toContain('<a class="cid" href="/connections/3428714">3428714</a>');
    expect(text).not.toMatch(/<td[^>]*>[^<]*\{"/); // no raw JSON outside <details>
  });

  test("list pages say when they are empty", async () => {
    const fresh = setup();
    const a = await login(fresh.app, fresh.store);
    const html = async (p: string) => (await fresh.app.request(p, { headers: { cookie: a.cookie, accept: "text/html" } })).text();
    expect(await html("/errors")).toContain("No warnings or errors recorded.");
    expect(await html("/audit?action=nothing.like.this")).toContain('data-testid="audit-empty"');
    expect(await html("/resources")).toContain('data-testid="resources-empty"');
    expect(await html("/logs?level=error")).toContain("No log line matches this filter.");
    expect(await html("/logs/rows?level=error")).toContain("No log line matches this filter.");
  });
});
