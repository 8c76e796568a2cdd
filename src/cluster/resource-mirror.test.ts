import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store, type ResourceRecord } from "../store/index.ts";
import { ResourceMirror, type AuthorizationRecord } from "./resource-mirror.ts";

const GID = "11111111-1111-4111-8111-111111111111";
const res = (id: string, address: string, more: Partial<ResourceRecord> = {}): ResourceRecord => ({
  id, name: id, type: "cidr", address, filters: "[]", createdAt: 1000, updatedAt: 1000, servedBy: null, ...more,
});
const grant = (publicKey: string, resourceId: string, expiresAt: number | null = null): AuthorizationRecord => ({ publicKey, resourceId, expiresAt, createdAt: 1000 });
const byKey = (a: { publicKey: string; resourceId: string }, b: { publicKey: string; resourceId: string }) => `${a.publicKey}|${a.resourceId}`.localeCompare(`${b.publicKey}|${b.resourceId}`);

function world() {
  const local = Store.open(mkdtempSync(join(tmpdir(), "gg-rmirror-")));
  return { local, mirror: new ResourceMirror(local) };
}

test("a full load makes the local resources and authorizations exactly PostgreSQL's, says whether anything changed, and audits nothing", () => {
  const { local, mirror } = world();
  const db = res("db", "10.5.0.0/16");
  const web = res("web", "10.6.0.0/16", { servedBy: GID });
  expect(mirror.replaceAll([db, web], [grant("k1", "db"), grant("k1", "web"), grant("k2", "db", 5000)])).toBe(true);
  expect(local.resources.records().sort((a, b) => a.id.localeCompare(b.id))).toEqual([db, web]);
  expect(local.resources.authorizations().sort(byKey)).toEqual([
    { publicKey: "k1", resourceId: "db", expiresAt: null }, { publicKey: "k1", resourceId: "web", expiresAt: null }, { publicKey: "k2", resourceId: "db", expiresAt: 5000 },
  ]);
  expect(mirror.replaceAll([db, web], [grant("k1", "db"), grant("k1", "web"), grant("k2", "db", 5000)])).toBe(false);
  // The resource changed in place: its other grants stay (no delete, so no cascade).
  const db2 = { ...db, address: "10.7.0.0/16", updatedAt: 2000 };
  expect(mirror.replaceAll([db2], [grant("k1", "db"), grant("k2", "db", 6000)])).toBe(true);
  expect(local.resources.records()).toEqual([db2]);
  expect(local.resources.authorizations().sort(byKey)).toEqual([{ publicKey: "k1", resourceId: "db", expiresAt: null }, { publicKey: "k2", resourceId: "db", expiresAt: 6000 }]);
  // Only a grant changed: that is a change too.
  expect(mirror.replaceAll([db2], [grant("k1", "db")])).toBe(true);
  expect(local.resources.authorizations()).toEqual([{ publicKey: "k1", resourceId: "db", expiresAt: null }]);
  expect(local.audit.query({}).total).toBe(0);
});

test("one resource at a time: upsert writes it and exactly its grants (others' untouched); remove takes it and its grants", () => {
  const { local, mirror } = world();
  mirror.replaceAll([res("db", "10.5.0.0/16"), res("web", "10.6.0.0/16")], [grant("k1", "db"), grant("k1", "web")]);
  expect(mirror.upsert(res("db", "10.5.0.0/16"), [grant("k1", "db")])).toBe(false);
  expect(mirror.upsert(res("db", "10.5.0.0/16"), [grant("k2", "db")])).toBe(true);
  expect(local.resources.authorizations().sort(byKey)).toEqual([{ publicKey: "k1", resourceId: "web", expiresAt: null }, { publicKey: "k2", resourceId: "db", expiresAt: null }]);
  expect(mirror.upsert(res("new", "10.8.0.0/16", { servedBy: GID }), [])).toBe(true);
  expect(local.resources.records().find((r) => r.id === "new")?.servedBy).toBe(GID);
  expect(mirror.remove("db")).toBe(true);
  expect(mirror.remove("db")).toBe(false);
  expect(local.resources.authorizations()).toEqual([{ publicKey: "k1", resourceId: "web", expiresAt: null }]);
  expect(local.audit.query({}).total).toBe(0);
});
