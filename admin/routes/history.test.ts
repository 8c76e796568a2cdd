import { describe, expect, test } from "bun:test";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import { filePeerId, parsePeerInput, type PeerInput } from "../../src/store/index.ts";
import { PersistedLogs } from "../../src/telemetry/persisted-logs.ts";
import { ENV_TOKEN, setup } from "../testing.ts";

const auth = { authorization: `Bearer ${ENV_TOKEN}` };
const GID = "0b7e9f0e-3a53-4f0c-9d43-5c4b8f1d2e6a";
const key = () => encodeKey(publicKeyOf(generatePrivateKey()));

describe("peer history", () => {
  test("an old cid leads to its peer's history and its connection now, never a bare 'no connection'", async () => {
    const ctx = setup({ gid: GID });
    const live = ctx.conns[0]!;
    const p = ctx.store.peers.create(parsePeerInput({ name: "laptop", publicKey: live.public_key, allowedIps: "10.99.0.2/32" }) as PeerInput, "admin:a");
    ctx.store.history.observe(GID, [{ cid: 77, publicKey: live.public_key }], Date.parse("2026-11-28T09:00:00Z"));
    ctx.store.audit.record({ actor: "gateway", action: "connection.established", cid: 77, subject: live.public_key });
    const r = await ctx.app.request("/connections/77", { headers: auth });
    expect(r.status).toBe(200);
    const page = await r.text();
    expect(page).toContain("History of laptop");
    expect(page).toContain(`data-testid="peer-id">${p.id}`);
    expect(page).toMatch(new RegExp(`href="/connections/${live.cid}" data-testid="current-connection"`));
    expect(page).toContain(`/audit?peer=${p.id}`);
    expect(page).toContain('data-action="connection.established"');
    expect(page).toContain('data-action="peer.created"');
    // The peer's own page links its history.
    const cookieless = await (await ctx.app.request(`/peers/${p.id}`, { headers: auth })).text();
    expect(cookieless).toContain(`href="/history/${p.id}" data-testid="history-link"`);
    // The audit page links a subject (a key, with / and +) to the same history.
    const byKey = await ctx.app.request(`/history/${encodeURIComponent(live.public_key)}`, { headers: auth });
    expect(await byKey.text()).toContain(`data-testid="peer-id">${p.id}`);
  });

  test("an old cid of a peer not connected now says so; an unknown cid says it is unknown", async () => {
    const ctx = setup({ gid: GID });
    const k = key();
    ctx.store.history.remember([{ publicKey: k, peerId: filePeerId(k), name: null, source: "file" }], 1);
    ctx.store.history.observe(GID, [{ cid: 78, publicKey: k }], 1);
    const page = await (await ctx.app.request("/connections/78", { headers: auth })).text();
    expect(page).toContain('data-testid="not-connected"');
    expect(page).toContain(filePeerId(k));
    const unknown = await ctx.app.request("/connections/79", { headers: auth });
    expect(unknown.status).toBe(404);
    expect(await unknown.text()).toContain('data-testid="unknown-cid"');
    const api = await (await ctx.app.request("/api/connections/78/history", { headers: auth })).json() as { peer: { id: string }; current: unknown };
    expect(api).toMatchObject({ peer: { id: filePeerId(k) }, current: null });
  });

  test("the audit filter by peer returns its peer.* and connection.* rows (page and API); an unknown peer is a 400 naming it", async () => {
    const ctx = setup({ gid: GID });
    const k = key();
    const p = ctx.store.peers.create(parsePeerInput({ name: "phone", publicKey: k, allowedIps: "10.99.0.5/32" }) as PeerInput, "admin:a");
    ctx.store.audit.record({ actor: "gateway", action: "connection.established", cid: 5, subject: k });
    ctx.store.audit.record({ actor: "gateway", action: "connection.established", cid: 6, subject: key() });
    const body = await (await ctx.app.request(`/api/audit?peer=${p.id}`, { headers: auth })).json() as { rows: { action: string }[]; total: number };
    expect(body.rows.map((r) => r.action)).toEqual(["connection.established", "peer.created"]);
    const page = await (await ctx.app.request(`/audit?peer=${p.id}`, { headers: auth })).text();
    expect(page.match(/data-action="/g)).toHaveLength(2);
    const bad = await ctx.app.request("/api/audit?peer=nobody", { headers: auth });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("peer");
  });

  test("a peer's history shows its log lines from before a restart", async () => {
    const ctx = setup({ gid: GID });
    const k = key();
    ctx.store.history.remember([{ publicKey: k, peerId: filePeerId(k), name: null, source: "file" }], 1);
    ctx.store.history.observe(GID, [{ cid: 90, publicKey: k }], 1);
    // An earlier run wrote these lines; this run's ring has never seen them.
    const earlier = new PersistedLogs({ defer: () => undefined });
    earlier.attach(ctx.store.logs, () => k, false);
    earlier.push({ ts: new Date().toISOString(), level: "warn", target: "tunnel", msg: "handshake gave up", cid: 90 }, 0);
    earlier.close();
    const now = new PersistedLogs({ defer: () => undefined });
    now.attach(ctx.store.logs, () => undefined, false);
    ctx.logs.persistTo(now);
    const page = await (await ctx.app.request(`/history/${filePeerId(k)}`, { headers: auth })).text();
    expect(page).toContain("handshake gave up");
    const api = await (await ctx.app.request(`/api/history/${filePeerId(k)}`, { headers: auth })).json() as { logs: { msg: string }[]; connections: { cid: number }[] };
    expect(api.logs.map((l) => l.msg)).toEqual(["handshake gave up"]);
    expect(api.connections.map((c) => c.cid)).toEqual([90]);
  });
});
