// The policy tester through the API and its page, on a real tunnel + gateway core.
import { describe, expect, test } from "bun:test";
import { nobleAead } from "../../src/crypto/aead-noble.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import { GatewayCore, parseResource } from "../../src/gateway/index.ts";
import { parseCidr } from "../../src/ip/address.ts";
import { testPolicy } from "../../src/standalone/policy-test.ts";
import { Tunnel } from "../../src/tunnel/index.ts";
import { Captures } from "../../src/io/capture.ts";
import { buildIcmpEcho } from "../../src/ip/build.ts";
import { BASE, ENV_TOKEN, login, setup } from "../testing.ts";

function withTester() {
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(), random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
  const core = new GatewayCore();
  core.policy.upsertResource(parseResource({ type: "cidr", id: "lan", address: "10.0.0.0/24", filters: [{ protocol: "tcp", port_range_start: 22, port_range_end: 22 }] }));
  const ctx: ReturnType<typeof setup> = setup({ policyTest: (q) => testPolicy({ tunnel, core, storePeers: () => ctx.store.peers.list() }, q, ctx.clock.now) });
  const key = publicKeyOf(generatePrivateKey());
  const conn = tunnel.upsertPeer({ publicKey: key, allowedIPs: [parseCidr("10.99.0.2/32")] });
  core.policy.authorize(conn.cid, "lan", null);
  return { ...ctx, conn, key: encodeKey(key) };
}

const bearer = { authorization: `Bearer ${ENV_TOKEN}` };

describe("policy tester API", () => {
  test("answers allow or deny with the decision path", async () => {
    const ctx = withTester();
    const deny = await ctx.app.request(`/api/policy/test?peer=${ctx.conn.cid}&dst=10.0.0.5&port=443&protocol=tcp`, { headers: bearer });
    expect(deny.status).toBe(200);
    const body = (await deny.json()) as { verdict: string; reason: string; steps: { step: string; outcome: string }[] };
    expect(body).toMatchObject({ verdict: "deny", reason: "filtered", resource: "lan" });
    expect(body.steps.map((s) => s.step)).toEqual(["peer", "resource", "authorization", "filter"]);
    const allow = await ctx.app.request(`/api/policy/test?peer=${encodeURIComponent(ctx.key)}&dst=10.0.0.5&port=22`, { headers: bearer });
    expect(await allow.json()).toMatchObject({ verdict: "allow", packet: { protocol: "tcp", port: 22, src: "10.99.0.2" } });
  });

  test("bad queries are a 400 naming the field", async () => {
    const ctx = withTester();
    const cases: [string, string][] = [
      ["dst=10.0.0.5&port=22", "peer"],
      [`peer=${ctx.conn.cid}&port=22`, "dst"],
      [`peer=${ctx.conn.cid}&dst=10.0.0.5&protocol=tcp`, "port"],
      [`peer=${ctx.conn.cid}&dst=10.0.0.5&port=70000`, "port"],
      [`peer=${ctx.conn.cid}&dst=10.0.0.5&port=22&protocol=sctp`, "protocol"],
      ["peer=nobody&dst=10.0.0.5&port=22", "peer"],
      [`peer=${ctx.conn.cid}&dst=${encodeURIComponent("no such thing!")}&port=22`, "dst"],
    ];
    for (const [qs, field] of cases) {
      const r = await ctx.app.request(`/api/policy/test?${qs}`, { headers: bearer });
      expect(r.status).toBe(400);
      expect(await r.json()).toMatchObject({ error: "invalid", field });
    }
  });
});

describe("policy tester page", () => {
  test("shows a deny with its decision path, and a bad field as a message", async () => {
    const ctx = withTester();
    const { cookie } = await login(ctx.app, ctx.store);
    const empty = await (await ctx.app.request("/tools/policy", { headers: { cookie } })).text();
    expect(empty).toContain('id="policy-form"');
    expect(empty).toContain('href="/tools/policy" class="on"');
    const r = await ctx.app.request(`/tools/policy?peer=${ctx.conn.cid}&dst=10.0.0.5&protocol=udp&port=53`, { headers: { cookie } });
    const page = await r.text();
    expect(page).toContain('data-verdict="deny"');
    expect(page).toContain('data-reason="filtered"');
    expect(page).toContain("udp/53 matches none of &quot;lan&quot;&#39;s filters (tcp/22)");
    const bad = await ctx.app.request(`/tools/policy?peer=${ctx.conn.cid}&dst=10.0.0.5&protocol=udp`, { headers: { cookie } });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('data-field="port"');
  });
});

function withCapture() {
  const caps = new Captures();
  const ctx: ReturnType<typeof setup> = setup({
    capture: {
      start: (cid, limits, actor) => caps.start(cid, limits, ctx.clock.now, actor).status(),
      stop: (cid, actor) => caps.stop(cid, "stopped", ctx.clock.now, actor)?.status(),
      status: (cid) => caps.get(cid)?.status(),
      pcap: (cid) => caps.get(cid)?.pcap(),
    },
  });
  return { ...ctx, caps, cid: ctx.conns[0]!.cid };
}

describe("packet capture API", () => {
  const json = { ...bearer, "content-type": "application/json" };

  test("start with defaults, download a pcap of what was tapped, stop; a second start while running is a 409", async () => {
    const ctx = withCapture();
    const r = await ctx.app.request(`/api/connections/${ctx.cid}/capture`, { method: "POST", headers: json, body: "{}" });
    expect(r.status).toBe(201);
    expect(await r.json()).toMatchObject({ state: "running", limits: { max_packets: 1000, max_bytes: 1048576, max_seconds: 60 }, started_by: "token:env" });
    expect((await ctx.app.request(`/api/connections/${ctx.cid}/capture`, { method: "POST", headers: json, body: "{}" })).status).toBe(409);
    const ping = buildIcmpEcho({ src: "10.99.0.2", dst: "10.202.0.2", id: 1, seq: 1 });
    ctx.caps.tap(ctx.cid, ping, ping.length, ctx.clock.now);
    const file = await ctx.app.request(`/api/connections/${ctx.cid}/capture.pcap`, { headers: bearer });
    expect(file.headers.get("content-type")).toBe("application/vnd.tcpdump.pcap");
    expect(file.headers.get("content-disposition")).toContain(`glassgate-cid-${ctx.cid}.pcap`);
    const bytes = new Uint8Array(await file.arrayBuffer());
    expect(bytes.length).toBe(24 + 16 + ping.length);
    expect([...bytes.subarray(40)]).toEqual([...ping]);
    const stop = await ctx.app.request(`/api/connections/${ctx.cid}/capture`, { method: "DELETE", headers: bearer });
    expect(await stop.json()).toMatchObject({ state: "stopped", stop_reason: "stopped", stopped_by: "token:env", packets: 1 });
    expect((await ctx.app.request(`/api/connections/${ctx.cid}/capture`, { method: "DELETE", headers: bearer })).status).toBe(404);
  });

  test("limits above the hard caps, below the minimum, of the wrong type or unknown are a 400 naming the field", async () => {
    const ctx = withCapture();
    const cases: [unknown, string][] = [
      [{ max_packets: 0 }, "max_packets"],
      [{ max_packets: 100_001 }, "max_packets"],
      [{ max_bytes: 17 * 1024 * 1024 }, "max_bytes"],
      [{ max_seconds: "60" }, "max_seconds"],
      [{ max_seconds: 1.5 }, "max_seconds"],
      [{ snaplen: 10 }, "snaplen"],
    ];
    for (const [body, field] of cases) {
      const r = await ctx.app.request(`/api/connections/${ctx.cid}/capture`, { method: "POST", headers: json, body: JSON.stringify(body) });
      expect(r.status).toBe(400);
      expect(await r.json()).toMatchObject({ error: "invalid", field });
    }
    expect(ctx.caps.active.size).toBe(0);
    expect((await ctx.app.request("/api/connections/77/capture", { method: "POST", headers: json, body: "{}" })).status).toBe(404);
    expect((await ctx.app.request(`/api/connections/${ctx.cid}/capture.pcap`, { headers: bearer })).status).toBe(404);
  });

  test("the connection page starts, shows and stops a capture", async () => {
    const ctx = withCapture();
    const { cookie, csrf } = await login(ctx.app, ctx.store);
    const before = await (await ctx.app.request(`/connections/${ctx.cid}`, { headers: { cookie } })).text();
    expect(before).toContain('data-capture="none"');
    expect(before).toContain('id="capture-form"');
    const bad = await ctx.app.request(`/connections/${ctx.cid}/capture`, { method: "POST", headers: { cookie, origin: BASE }, body: new URLSearchParams({ _csrf: csrf, max_packets: "10", max_bytes: "100", max_seconds: "5" }) });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("max_bytes: &quot;100&quot; is not a whole number from 1024");
    const ok = await ctx.app.request(`/connections/${ctx.cid}/capture`, { method: "POST", headers: { cookie, origin: BASE }, body: new URLSearchParams({ _csrf: csrf, max_packets: "10", max_bytes: "4096", max_seconds: "5" }) });
    expect(ok.status).toBe(302);
    expect(ctx.caps.get(ctx.cid)!.limits).toEqual({ maxPackets: 10, maxBytes: 4096, maxSeconds: 5 });
    const running = await (await ctx.app.request(`/connections/${ctx.cid}`, { headers: { cookie } })).text();
    expect(running).toContain('data-capture="running"');
    expect(running).toContain(`hx-get="/connections/${ctx.cid}/capture/panel"`);
    await ctx.app.request(`/connections/${ctx.cid}/capture/stop`, { method: "POST", headers: { cookie, origin: BASE }, body: new URLSearchParams({ _csrf: csrf }) });
    const after = await (await ctx.app.request(`/connections/${ctx.cid}/capture/panel`, { headers: { cookie } })).text();
    expect(after).toContain('data-capture="stopped"');
    expect(after).toContain("by admin:alice");
  });
});
