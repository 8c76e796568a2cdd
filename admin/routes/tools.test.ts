// The policy tester through the API and its page, on a real tunnel + gateway core.
import { describe, expect, test } from "bun:test";
import { nobleAead } from "../../src/crypto/aead-noble.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import { GatewayCore, parseResource } from "../../src/gateway/index.ts";
import { parseCidr } from "../../src/ip/address.ts";
import { testPolicy } from "../../src/standalone/policy-test.ts";
import { Tunnel } from "../../src/tunnel/index.ts";
import { ENV_TOKEN, login, setup } from "../testing.ts";

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
