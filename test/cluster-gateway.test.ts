// One gateway run on a private PostgreSQL (runStandalone with `pg`, in a namespace of its own):
// it registers and publishes its presence there, its admin shows the gateways, the shared
// resources and the shared audit, every local audit row is copied there within a beat, and
// stopping copies the last ones.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../src/store/index.ts";
import { PgStore } from "../src/store/pg-store.ts";
import { readGatewayLive } from "../src/cluster/gateway-presence.ts";
import { watch } from "./support/process-lines.ts";
import { Netns, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { postgresSkipReason, TestPostgres } from "./support/postgres.ts";

const skip = skipReason(["ip", "curl"]) ?? postgresSkipReason();
if (skip) console.log(`skipping clustered gateway test: ${skip}`);

const TOKEN = "cluster-test-token";

describe.skipIf(!!skip)("a gateway on PostgreSQL", () => {
  let pg: TestPostgres;
  let ns: Netns;
  let dir: string;
  beforeAll(() => {
    pg = TestPostgres.start();
    ns = new Netns(`ggpg${uniqueTag()}`);
    dir = mkdtempSync(join(tmpdir(), "gg-pggw-"));
  });
  afterAll(async () => {
    await ns?.destroy();
    pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The admin API from inside the gateway's namespace (it listens on that loopback). */
  const api = (method: string, path: string, body?: unknown): unknown => {
    const args = ["curl", "-sS", "-f", "-X", method, "-H", `authorization: Bearer ${TOKEN}`, "-H", "origin: http://127.0.0.1:8080"];
    if (body !== undefined) args.push("-H", "content-type: application/json", "--data", JSON.stringify(body));
    const out = ns.exec([...args, `http://127.0.0.1:8080${path}`]);
    return out ? JSON.parse(out) : undefined;
  };

  test("registers and publishes, ships every audit row once (the last ones at stop), and its admin reads the shared state", async () => {
    const url = pg.createDatabase("onegw");
    const dataDir = join(dir, "data");
    const child = ns.start(["bun", join(import.meta.dir, "support", "pg-gateway.ts"), dataDir, url, "8080"]);
    const out = watch(child, "clustered gateway");
    const ready = await out.next((l) => l.ready === true, "the gateway up", 60_000);
    const gid = ready.gid as string;
    const check = await PgStore.open(url, "checker");
    try {
      // Registered at start, with its live state published.
      const [row] = await check.gateways.list();
      expect(row).toMatchObject({ gid, endpoint: "gw.example:52625", connectedPeers: 0 });
      expect(readGatewayLive(row!.live)).toEqual({ connections: [], problems: [], unreadable: null });

      // An audited change lands in SQLite first, then in PostgreSQL by the shipper.
      const created = api("POST", "/api/peers", { name: "laptop" }) as { id: string; public_key: string };
      const inPg = async () => (await check.client`select origin_id::int as origin, action, subject, gid from audit_events order by origin_id`) as { origin: number; action: string; subject: string; gid: string }[];
      const shipped = await waitFor("the peer.created row in PostgreSQL", async () => (await inPg()).find((r) => r.action === "peer.created"), 10_000, 50);
      expect(shipped).toMatchObject({ gid, subject: created.public_key });

      // The admin lists the gateways from PostgreSQL, up, and reads the shared audit filtered by gateway.
      const gws = api("GET", "/api/gateways") as { gateways: { gid: string; health: string; self: boolean }[] };
      expect(gws.gateways.map((g) => [g.gid, g.health, g.self])).toEqual([[gid, "up", true]]);
      await check.audit.record({ actor: "admin:elsewhere", action: "settings.updated", subject: "from-another-gateway", gid: "gw-other" });
      const audit = api("GET", `/api/audit?gid=${gid}`) as { rows: { subject: string; gid: string }[] };
      expect(audit.rows.map((r) => r.gid)).toEqual(audit.rows.map(() => gid));
      expect((api("GET", "/api/audit?gid=gw-other") as { rows: { subject: string }[] }).rows.map((r) => r.subject)).toEqual(["from-another-gateway"]);

      // Resources are shared too: one added through this admin is in PostgreSQL (audited there, by this
      // gateway); one added by another gateway reaches this one's API through its mirror.
      expect(api("POST", "/api/resources", { type: "cidr", id: "db", address: "10.50.0.0/16" })).toEqual({ id: "db" });
      expect((await check.resources.records()).map((r) => r.id)).toEqual(["db"]);
      expect((await check.audit.query({ subject: "db" })).rows.map((r) => [r.action, r.gid])).toEqual([["resource.created", gid]]);
      await check.resources.create({ type: "cidr", id: "elsewhere", address: "10.51.0.0/16", served_by: "22222222-2222-4222-8222-222222222222" }, "admin:elsewhere");
      await waitFor("the other gateway's resource in this admin", () => (api("GET", "/api/resources") as { resources: { id: string }[] }).resources.some((r) => r.id === "elsewhere") || undefined, 10_000, 50);

      // A change right before the stop is copied by the stop itself.
      api("DELETE", `/api/peers/${created.id}`);
      child.kill("SIGTERM");
      await out.next((l) => l.stopped === true, "the gateway stopped", 15_000);
      await child.exited;
      const local = Store.open(dataDir);
      try {
        const ids = local.audit.query({}, { limit: 100_000, offset: 0 }).rows.map((r) => r.id).sort((a, b) => a - b);
        const copied = (await inPg()).map((r) => r.origin).filter((o) => o !== null);
        expect(copied).toEqual(ids);
        expect((await inPg()).some((r) => r.action === "peer.deleted")).toBe(true);
      } finally {
        local.close();
      }
    } finally {
      await check.close();
    }
  }, 120_000);
});
