// The JSON API (same field names as logs) and /metrics. Bodies are JSON objects with known fields
// only; bad values throw InputError / ResourceError, which app.ts's onError turns into 4xx.
import { Hono, type Context } from "hono";
import { z } from "zod";
import { parseExpiresAt, PeerInput, PeerValidationError, ResourceError, type PeerRow } from "../../src/store/index.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { capFields, echo, InputError, intParam, jsonObject, knownFields, parseStrict, textParam } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import { auditFilter, auditRepository, logQuery, peerStore, principal, resourceStore } from "./common.ts";
import { PeerNotFound, peerCreator, peerUpdater } from "./peers.ts";
import { otherPeers, reservedIds } from "./resources.ts";
import { peerSubjects } from "./history.ts";
import { overviewDataOf } from "./pages.ts";
import { overviewJson } from "../views/overview.ts";

/** What a JSON body may contain (values are validated by the store's parsers). */
const PEER_FIELDS = knownFields(Object.keys(PeerInput.shape));
const RESOURCE_FIELDS = knownFields(["type", "id", "name", "address", "served_by"]).extend({
  filters: z.array(knownFields(["protocol", "port_range_start", "port_range_end"])).optional(),
});
const AUTHORIZATION_BODY = z.strictObject({
  public_key: z.string({ message: "is required: a peer's public key" }),
  resource_id: z.string({ message: "is required: the id of a resource managed here" }),
  expires_at: z.unknown().optional(),
});

export function apiRoutes(opts: AdminOptions) {
  const { gateway, store, logs } = opts;
  const createPeer = peerCreator(opts);
  const updatePeer = peerUpdater(opts);
  /** A store peer as the API shows it: never its keys' secrets; `source` tells it from file peers. */
  const peerJson = ({ clientPrivateKey: _k, presharedKey, ...p }: PeerRow) => ({ ...p, presharedKey: presharedKey ? "(set)" : null, source: "store" as const });
  const invalid = (c: Context<AdminEnv>, err: PeerValidationError) => c.json({ error: "invalid", field: Object.keys(err.fields)[0], fields: capFields(err.fields) }, 400);
  return new Hono<AdminEnv>()
    .get("/api/connections", (c) => c.json({ connections: gateway.connections() }))
    // The Overview's data: facts, problems, drops by reason with the cids causing them, top talkers, expiring peers.
    .get("/api/overview", (c) => c.json(overviewJson(overviewDataOf(opts, Date.now()))))
    .get("/api/sessions", (c) => c.json({ sessions: gateway.connections().flatMap((x) => x.sessions.map((session) => ({ cid: x.cid, session, public_key: x.public_key }))) }))
    .get("/api/logs", (c) => c.json({ logs: logs?.query(logQuery(c.req.query())) ?? [] }))
    .get("/api/audit", async (c) => {
      const q = c.req.query();
      const filter = auditFilter(q, (p) => peerSubjects(opts, p));
      const limit = intParam(q, "limit", { min: 1, max: 1000 }) ?? 50;
      const offset = intParam(q, "offset", { min: 0, max: 1_000_000_000 }) ?? 0;
      return c.json((await auditRepository(opts)?.query(filter, { limit, offset })) ?? { rows: [], total: 0 });
    })
    // Every peer, config file ones included (read-only: `source: "file"`, a stable `file-…` id, their [Peer] line).
    .get("/api/peers", async (c) => c.json({
      peers: [
        ...(opts.peers || store ? await peerStore(opts).list() : []).map(peerJson),
        ...(gateway.filePeers?.() ?? []).map((f) => ({
          id: f.id, name: null, line: f.line, publicKey: f.public_key, allowedIps: f.allowed_ips.join(", "), endpoint: f.endpoint,
          persistentKeepalive: f.persistent_keepalive, presharedKey: f.preshared_key ? "(set)" : null, enabled: true, expiresAt: null, source: "file" as const,
        })),
      ],
    }))
    // Defaults for a client to come up with no more than a name: enabled, the next free address,
    // keys generated here — and then its config, in this response only (the UI can show it again).
    .post("/api/peers", async (c) => {
      const body = parseStrict(PEER_FIELDS, await jsonObject(c));
      try {
        const { row, clientConfig } = await createPeer(body, principal(c).actor, { form: false, requestHost: new URL(c.req.url).hostname });
        return c.json({ id: row.id, public_key: row.publicKey, allowed_ips: row.allowedIps, enabled: row.enabled, ...(clientConfig && { client_config: clientConfig }) }, 201);
      } catch (err) {
        if (err instanceof PeerValidationError) return invalid(c, err);
        throw err;
      }
    })
    // A partial update: only the fields sent change (same validation as POST), audited before/after.
    .patch("/api/peers/:id", async (c) => {
      const body = parseStrict(PEER_FIELDS, await jsonObject(c));
      if (Object.keys(body).length === 0) throw new InputError("body", "names no field to change");
      try {
        return c.json({ peer: peerJson(await updatePeer(c.req.param("id"), body, principal(c).actor, true)) }, 200);
      } catch (err) {
        if (err instanceof PeerNotFound) return c.json({ error: "not_found" }, 404);
        if (err instanceof PeerValidationError) return invalid(c, err);
        throw err;
      }
    })
    .delete("/api/peers/:id", async (c) => {
      const ok = await peerStore(opts).delete(c.req.param("id"), principal(c).actor);
      if (ok) gateway.peersChanged();
      return ok ? c.body(null, 204) : c.json({ error: "not_found" }, 404);
    })
    // Resources and authorizations (Firezone's shapes: resources {type,id,name,address,filters};
    // authorizations {public_key, resource_id, expires_at (Unix seconds or ISO, null = never)}).
    .get("/api/resources", async (c) => c.json({ resources: opts.resources || store ? await resourceStore(opts).list() : [] }))
    .post("/api/resources", async (c) => {
      const body = parseStrict(RESOURCE_FIELDS, await jsonObject(c));
      const r = await resourceStore(opts).create(body, principal(c).actor, reservedIds(opts));
      gateway.resourcesChanged?.();
      return c.json({ id: r.id }, 201);
    })
    .put("/api/resources/:id", async (c) => {
      const id = c.req.param("id");
      if (reservedIds(opts).has(id)) throw new ResourceError("id", `${echo(id)} is a resource of the config file (read-only here)`, "conflict");
      const body = parseStrict(RESOURCE_FIELDS, await jsonObject(c));
      const r = await resourceStore(opts).update(id, { ...body, id: body.id ?? id }, principal(c).actor);
      gateway.resourcesChanged?.();
      return c.json({ id: r.id }, 200);
    })
    .delete("/api/resources/:id", async (c) => {
      const ok = await resourceStore(opts).delete(c.req.param("id"), principal(c).actor);
      if (ok) gateway.resourcesChanged?.();
      return ok ? c.body(null, 204) : c.json({ error: "not_found" }, 404);
    })
    .get("/api/authorizations", async (c) => c.json({ authorizations: (opts.resources || store ? await resourceStore(opts).authorizations() : []).map((a) => ({ public_key: a.publicKey, resource_id: a.resourceId, expires_at: a.expiresAt === null ? null : Math.floor(a.expiresAt / 1000) })) }))
    .post("/api/authorizations", async (c) => {
      const b = parseStrict(AUTHORIZATION_BODY, await jsonObject(c));
      const expiresAt = parseExpiresAt(b.expires_at);
      await resourceStore(opts).authorize({ publicKey: b.public_key, resourceId: b.resource_id, expiresAt }, principal(c).actor, otherPeers(opts));
      gateway.resourcesChanged?.();
      return c.json({ ok: true }, 201);
    })
    .delete("/api/authorizations", async (c) => {
      const q = c.req.query();
      const ok = await resourceStore(opts).revoke(textParam(q, "public_key") ?? "", textParam(q, "resource_id") ?? "", principal(c).actor);
      if (ok) gateway.resourcesChanged?.();
      return ok ? c.body(null, 204) : c.json({ error: "not_found" }, 404);
    })
    .get("/metrics", async (c) => c.text(await gateway.metrics(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }));
}
