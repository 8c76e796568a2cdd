// The JSON API (same field names as logs) and /metrics. Bodies are JSON objects with known fields
// only; bad values throw InputError / ResourceError, which app.ts's onError turns into 4xx.
import { Hono } from "hono";
import { z } from "zod";
import { parseExpiresAt, PeerInput, PeerValidationError, ResourceError } from "../../src/store/index.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { capFields, echo, intParam, jsonObject, knownFields, parseStrict, textParam } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import { auditFilter, logQuery, principal, requireStore } from "./common.ts";
import { peerCreator } from "./peers.ts";
import { otherPeers, reservedIds } from "./resources.ts";

/** What a JSON body may contain (values are validated by the store's parsers). */
const PEER_FIELDS = knownFields(Object.keys(PeerInput.shape));
const RESOURCE_FIELDS = knownFields(["type", "id", "name", "address"]).extend({
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
  return new Hono<AdminEnv>()
    .get("/api/connections", (c) => c.json({ connections: gateway.connections() }))
    .get("/api/sessions", (c) => c.json({ sessions: gateway.connections().flatMap((x) => x.sessions.map((session) => ({ cid: x.cid, session, public_key: x.public_key }))) }))
    .get("/api/logs", (c) => c.json({ logs: logs?.query(logQuery(c.req.query())) ?? [] }))
    .get("/api/audit", (c) => {
      const q = c.req.query();
      const filter = auditFilter(q);
      const limit = intParam(q, "limit", { min: 1, max: 1000 }) ?? 50;
      const offset = intParam(q, "offset", { min: 0, max: 1_000_000_000 }) ?? 0;
      return c.json(store?.audit.query(filter, { limit, offset }) ?? { rows: [], total: 0 });
    })
    .get("/api/peers", (c) => c.json({ peers: (store?.peers.list() ?? []).map(({ clientPrivateKey: _k, presharedKey, ...p }) => ({ ...p, presharedKey: presharedKey ? "(set)" : null })) }))
    .post("/api/peers", async (c) => {
      const body = parseStrict(PEER_FIELDS, await jsonObject(c));
      try {
        const row = createPeer(body, principal(c).actor);
        return c.json({ id: row.id, public_key: row.publicKey }, 201);
      } catch (err) {
        if (err instanceof PeerValidationError) return c.json({ error: "invalid", fields: capFields(err.fields) }, 400);
        throw err;
      }
    })
    .delete("/api/peers/:id", (c) => {
      const ok = requireStore(opts).peers.delete(c.req.param("id"), principal(c).actor);
      if (ok) gateway.peersChanged();
      return ok ? c.body(null, 204) : c.json({ error: "not_found" }, 404);
    })
    // Resources and authorizations (Firezone's shapes: resources {type,id,name,address,filters};
    // authorizations {public_key, resource_id, expires_at (Unix seconds or ISO, null = never)}).
    .get("/api/resources", (c) => c.json({ resources: store?.resources.list() ?? [] }))
    .post("/api/resources", async (c) => {
      const body = parseStrict(RESOURCE_FIELDS, await jsonObject(c));
      const r = requireStore(opts).resources.create(body, principal(c).actor, reservedIds(opts));
      gateway.resourcesChanged?.();
      return c.json({ id: r.id }, 201);
    })
    .put("/api/resources/:id", async (c) => {
      const id = c.req.param("id");
      if (reservedIds(opts).has(id)) throw new ResourceError("id", `${echo(id)} is a resource of the config file (read-only here)`, "conflict");
      const body = parseStrict(RESOURCE_FIELDS, await jsonObject(c));
      const r = requireStore(opts).resources.update(id, { ...body, id: body.id ?? id }, principal(c).actor);
      gateway.resourcesChanged?.();
      return c.json({ id: r.id }, 200);
    })
    .delete("/api/resources/:id", (c) => {
      const ok = requireStore(opts).resources.delete(c.req.param("id"), principal(c).actor);
      if (ok) gateway.resourcesChanged?.();
      return ok ? c.body(null, 204) : c.json({ error: "not_found" }, 404);
    })
    .get("/api/authorizations", (c) => c.json({ authorizations: (store?.resources.authorizations() ?? []).map((a) => ({ public_key: a.publicKey, resource_id: a.resourceId, expires_at: a.expiresAt === null ? null : Math.floor(a.expiresAt / 1000) })) }))
    .post("/api/authorizations", async (c) => {
      const b = parseStrict(AUTHORIZATION_BODY, await jsonObject(c));
      const expiresAt = parseExpiresAt(b.expires_at);
      requireStore(opts).resources.authorize({ publicKey: b.public_key, resourceId: b.resource_id, expiresAt }, principal(c).actor, otherPeers(opts));
      gateway.resourcesChanged?.();
      return c.json({ ok: true }, 201);
    })
    .delete("/api/authorizations", (c) => {
      const q = c.req.query();
      const ok = requireStore(opts).resources.revoke(textParam(q, "public_key") ?? "", textParam(q, "resource_id") ?? "", principal(c).actor);
      if (ok) gateway.resourcesChanged?.();
      return ok ? c.body(null, 204) : c.json({ error: "not_found" }, 404);
    })
    .get("/metrics", async (c) => c.text(await gateway.metrics(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }));
}
