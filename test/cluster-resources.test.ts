// Resources and authorizations shared by several gateways through one PostgreSQL database
// (src/cluster/cluster-resources.ts), as test/cluster-peers.test.ts for peers: a change made on one
// gateway reaches another's local mirror through LISTEN/NOTIFY — the reconcile is set to an hour
// here, so only a notification can deliver it in time — is audited once (in PostgreSQL, never in a
// mirror), and a resource served only by one gateway stays out of the others' policy.
import { describe, expect, test } from "bun:test";
import { ClusterResources } from "../src/cluster/cluster-resources.ts";
import { nobleAead } from "../src/crypto/aead-noble.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { AccessPolicy } from "../src/gateway/index.ts";
import { ResourceSync } from "../src/standalone/resource-sync.ts";
import { parsePeerInput, ResourceError, type PeerInput } from "../src/store/index.ts";
import { Logger, parseLogFilter } from "../src/telemetry/log.ts";
import { Tunnel } from "../src/tunnel/index.ts";
import { clusterGateways, propagationTimer, until, type ClusterGw } from "./support/cluster-pair.ts";
import { postgresSkipReason } from "./support/postgres.ts";

const skip = postgresSkipReason();
if (skip) console.log(`skipping cluster resource tests: ${skip}`);

type Gw = ClusterGw<"resources", ClusterResources>;

describe.skipIf(!!skip)("resources across gateways on one PostgreSQL", () => {
  const gateways = clusterGateways("resources", (o) => ClusterResources.start(o), { dir: "gg-cres-", db: "cr" });
  const { pair } = gateways;

  /** A shared peer (PostgreSQL), as an admin would add it: authorizations must name one. */
  async function peer(g: Gw, name: string, allowedIps: string): Promise<string> {
    const input = parsePeerInput({ name, publicKey: encodeKey(publicKeyOf(generatePrivateKey())), allowedIps }) as PeerInput;
    return (await g.pg.peers.create(input, "admin:alice")).publicKey;
  }

  test("a resource and an authorization created on gateway A reach gateway B's mirror by notification, audited once in PostgreSQL and never in either SQLite", async () => {
    const [a, b] = await pair();
    const key = await peer(a, "laptop", "10.90.0.2/32");
    const { delays, timed } = propagationTimer();
    const before = b.changes;
    await timed("create", () => a.resources.create({ type: "cidr", id: "db", name: "database", address: "10.50.0.0/16", filters: [] }, "admin:alice"), () => b.resources.list().some((r) => r.id === "db"));
    expect(a.resources.list().map((r) => r.id)).toEqual(["db"]);
    await timed("authorize", () => a.resources.authorize({ publicKey: key, resourceId: "db", expiresAt: null }, "admin:alice"), () => b.resources.authorizations().some((x) => x.publicKey === key && x.resourceId === "db"));
    await timed("update", () => a.resources.update("db", { type: "cidr", id: "db", name: "main database", address: "10.51.0.0/16", filters: [] }, "admin:alice"), () => b.resources.records().find((r) => r.id === "db")?.address === "10.51.0.0/16");
    // The update kept the authorization (PostgreSQL's row, read back with its resource).
    expect(b.resources.authorizations()).toEqual([{ publicKey: key, resourceId: "db", expiresAt: null }]);
    await timed("revoke", () => a.resources.revoke(key, "db", "admin:alice"), () => b.resources.authorizations().length === 0);
    await timed("delete", () => a.resources.delete("db", "admin:alice"), () => b.resources.records().length === 0);
    console.log(`resource propagation A→B by NOTIFY (ms, write start → B's mirror): ${JSON.stringify(delays)}`);

    expect(b.changes - before).toBe(5);
    expect(b.resources.stats()).toMatchObject({ appliedByNotice: 5, reconcileRepairs: 0, listening: true, resources: 0, authorizations: 0 });
    const audit = await a.pg.audit.query({ subject: "db" });
    expect(audit.rows.map((r) => [r.action, r.reason])).toEqual([
      ["resource.deleted", null],
      ["resource.updated", "authorization revoked"],
      ["resource.updated", null],
      ["resource.updated", "authorization granted"],
      ["resource.created", null],
    ]);
    expect(new Set(audit.rows.map((r) => r.gid))).toEqual(new Set([a.local.gid]));
    expect(a.local.audit.query({}).total).toBe(0);
    expect(b.local.audit.query({}).total).toBe(0);
  });

  test("the PostgreSQL store validates as the SQLite one: a duplicate id, an unknown key, a bad served_by are refused and announce nothing", async () => {
    const [a, b] = await pair();
    await a.resources.create({ type: "cidr", id: "db", address: "10.50.0.0/16" }, "admin:alice");
    await until("the resource on B", () => b.resources.records().length === 1);
    const notices = b.resources.stats().notices;
    await expect(a.resources.create({ type: "cidr", id: "db", address: "10.52.0.0/16" }, "admin:alice")).rejects.toMatchObject({ kind: "conflict", field: "id" });
    await expect(a.resources.create({ type: "cidr", id: "file", address: "10.52.0.0/16" }, "admin:alice", new Set(["file"]))).rejects.toMatchObject({ kind: "conflict" });
    await expect(a.resources.create({ type: "cidr", id: "x", address: "10.52.0.0/16", served_by: "not-a-gid" }, "admin:alice")).rejects.toMatchObject({ field: "served_by" });
    const stranger = encodeKey(publicKeyOf(generatePrivateKey()));
    await expect(a.resources.authorize({ publicKey: stranger, resourceId: "db", expiresAt: null }, "admin:alice")).rejects.toBeInstanceOf(ResourceError);
    await expect(a.resources.update("gone", { type: "cidr", id: "gone", address: "10.52.0.0/16" }, "admin:alice")).rejects.toMatchObject({ kind: "not_found" });
    // A committed write after them: once B has it, B has heard everything sent before.
    await a.resources.create({ type: "internet", id: "web" }, "admin:alice");
    await until("the next resource on B", () => b.resources.records().length === 2);
    expect(b.resources.stats().notices).toBe(notices + 1);
    expect((await a.pg.audit.query({})).rows.filter((r) => r.action.startsWith("resource.")).length).toBe(2);
  });

  test("a resource served only by gateway A is in A's policy and not in B's, until B is added to its served_by", async () => {
    const [a, b] = await pair();
    const sync = (g: Gw) => {
      const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(), random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
      const policy = new AccessPolicy();
      return { tunnel, policy, sync: new ResourceSync(policy, tunnel, g.local, [], new Logger(parseLogFilter("off")).target("gateway"), g.local.gid) };
    };
    const [sa, sb] = [sync(a), sync(b)];
    const key = await peer(a, "phone", "10.91.0.2/32");
    await a.resources.create({ type: "cidr", id: "a-only", address: "10.60.0.0/16", served_by: a.local.gid }, "admin:alice");
    await a.resources.create({ type: "cidr", id: "everywhere", address: "10.61.0.0/16" }, "admin:alice");
    await a.resources.authorize({ publicKey: key, resourceId: "a-only", expiresAt: null }, "admin:alice");
    await until("both resources and the grant on B", () => b.resources.records().length === 2 && b.resources.authorizations().length === 1);
    expect(b.resources.records().find((r) => r.id === "a-only")?.servedBy).toBe(a.local.gid);
    for (const s of [sa, sb]) s.sync.apply(0);
    expect(sa.policy.resource("a-only")).toBeDefined();
    expect(sa.policy.resource("everywhere")).toBeDefined();
    expect(sb.policy.resource("a-only")).toBeUndefined();
    expect(sb.policy.resource("everywhere")).toBeDefined();
    // Served by B too from now on: B's next sync takes it.
    await a.resources.update("a-only", { type: "cidr", id: "a-only", address: "10.60.0.0/16", served_by: [a.local.gid, b.local.gid] }, "admin:alice");
    await until("the new served_by on B", () => b.resources.records().find((r) => r.id === "a-only")?.servedBy?.includes(b.local.gid) === true);
    sb.sync.apply(0);
    expect(sb.policy.resource("a-only")).toBeDefined();
  });

  test("a change made while B's listener was down arrives at B's next reconcile", async () => {
    const [a, b] = await pair();
    await b.resources.suspendListening();
    await a.resources.create({ type: "cidr", id: "offline", address: "10.70.0.0/16" }, "admin:alice");
    // A hears its own notice: by then it was delivered to every listener there was.
    await until("A's own notice", () => a.resources.stats().notices === 1);
    await a.resources.settled();
    expect(b.resources.records()).toEqual([]);
    await b.resources.resumeListening();
    await until("B's reconcile after re-listen", () => b.resources.records().length === 1);
    expect(b.resources.stats()).toMatchObject({ appliedByNotice: 0, reconcileRepairs: 1 });
  });
});
