// The Resources page: every enforced resource (file and API); add, authorize, delete API ones.
// A refused change shows the page again with the store's message and its status (400/404/409).
import { Hono, type Context } from "hono";
import { parseFilterText } from "../../src/gateway/index.ts";
import { parseExpiresAt, ResourceError } from "../../src/store/index.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { capQuoted } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import * as v from "../views/resources.ts";
import { formText, page, principal, requireStore, session } from "./common.ts";

export const RESOURCE_STATUS = { invalid: 400, conflict: 409, not_found: 404 } as const;

/** Ids no API resource may take: every resource not from the store (the config file's). */
export function reservedIds(opts: AdminOptions): Set<string> {
  return new Set((opts.gateway.resources?.() ?? []).filter((r) => r.source !== "api").map((r) => r.id));
}

/** Keys of peers outside the store (the config file's): the data plane holds every peer. */
export function otherPeers(opts: AdminOptions): Set<string> {
  return new Set(opts.gateway.connections().map((x) => x.public_key));
}

export function resourceRoutes(opts: AdminOptions) {
  const { gateway } = opts;
  const view = (c: Context<AdminEnv>, errors: Record<string, string>, values: Record<string, string>, status: 200 | 400 | 404 | 409 = 200) =>
    page(c, "Resources", v.resourcesPage(gateway.resources?.() ?? [], session(c)?.csrfToken ?? "", errors, values), status);
  const refused = (c: Context<AdminEnv>, err: unknown, values: Record<string, string>) => {
    if (err instanceof ResourceError) return view(c, { form: capQuoted(err.message) }, values, RESOURCE_STATUS[err.kind]);
    throw err;
  };

  return new Hono<AdminEnv>()
    .get("/resources", (c) => view(c, {}, {}))
    .post("/resources", async (c) => {
      const f = await c.req.parseBody();
      const values = Object.fromEntries(["id", "name", "type", "address", "filters"].map((k) => [k, formText(f, k)]));
      try {
        let filters;
        try {
          filters = parseFilterText(values.filters!);
        } catch (err) {
          throw new ResourceError("filters", (err as Error).message);
        }
        requireStore(opts).resources.create({ type: values.type, id: values.id, name: values.name, address: values.address || undefined, filters }, principal(c).actor, reservedIds(opts));
        gateway.resourcesChanged?.();
        return c.redirect("/resources");
      } catch (err) {
        return refused(c, err, values);
      }
    })
    .post("/resources/:id/delete", (c) => {
      if (requireStore(opts).resources.delete(c.req.param("id"), principal(c).actor)) gateway.resourcesChanged?.();
      return c.redirect("/resources");
    })
    .post("/resources/:id/authorize", async (c) => {
      const f = await c.req.parseBody();
      try {
        const expiresAt = parseExpiresAt(formText(f, "expiresAt"), "expiresAt");
        requireStore(opts).resources.authorize({ publicKey: formText(f, "publicKey"), resourceId: c.req.param("id"), expiresAt }, principal(c).actor, otherPeers(opts));
        gateway.resourcesChanged?.();
        return c.redirect("/resources");
      } catch (err) {
        return refused(c, err, {});
      }
    });
}
