// The Resources page: every enforced resource (file and API); add, authorize, delete API ones.
// A refused change shows the page again with the store's message and its status (400/404/409).
// Cluster mode: writes go to the shared store (AdminOptions.resources), the form offers "Served by",
// and shared resources this gateway does not serve are listed below its own.
import { Hono, type Context } from "hono";
import { parseFilterText } from "../../src/gateway/index.ts";
import { parseExpiresAt, ResourceError } from "../../src/store/index.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { capQuoted } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import * as v from "../views/resources.ts";
import { formText, page, principal, resourceStore, session } from "./common.ts";

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
  /** Cluster mode: what the page adds (gateways, who serves each stored resource, those served elsewhere only). */
  const clusterView = async (checked: readonly string[], shown: readonly { id: string }[]): Promise<v.ResourceCluster | undefined> => {
    if (!opts.cluster) return undefined;
    const gateways = (await opts.cluster.gateways()).map((g) => ({ gid: g.gid, name: g.name, self: g.gid === opts.cluster!.gid }));
    const records = await resourceStore(opts).records();
    const here = new Set(shown.map((r) => r.id));
    return { gateways, checked, servedBy: new Map(records.map((r) => [r.id, r.servedBy])), elsewhere: records.filter((r) => !here.has(r.id)) };
  };
  const view = async (c: Context<AdminEnv>, errors: Record<string, string>, values: Record<string, string>, status: 200 | 400 | 404 | 409 = 200, checked: readonly string[] = []) => {
    const shown = gateway.resources?.() ?? [];
    return page(c, "Resources", v.resourcesPage(shown, session(c)?.csrfToken ?? "", errors, values, await clusterView(checked, shown)), status);
  };
  const refused = (c: Context<AdminEnv>, err: unknown, values: Record<string, string>, checked: readonly string[] = []) => {
    if (err instanceof ResourceError) return view(c, { form: capQuoted(err.message) }, values, RESOURCE_STATUS[err.kind], checked);
    throw err;
  };

  return new Hono<AdminEnv>()
    .get("/resources", (c) => view(c, {}, {}))
    .post("/resources", async (c) => {
      const f = await c.req.parseBody({ all: true });
      const values = Object.fromEntries(["id", "name", "type", "address", "filters"].map((k) => [k, formText(f, k)]));
      // The checkboxes (cluster mode only; a hidden empty value makes none checked mean every gateway).
      const servedBy = opts.cluster ? [f.servedBy ?? []].flat().map(String).filter(Boolean) : [];
      try {
        let filters;
        try {
          filters = parseFilterText(values.filters!);
        } catch (err) {
          throw new ResourceError("filters", (err as Error).message);
        }
        const raw = { type: values.type, id: values.id, name: values.name, address: values.address || undefined, filters, ...(opts.cluster ? { served_by: servedBy } : {}) };
        await resourceStore(opts).create(raw, principal(c).actor, reservedIds(opts));
        gateway.resourcesChanged?.();
        return c.redirect("/resources");
      } catch (err) {
        return refused(c, err, values, servedBy);
      }
    })
    .post("/resources/:id/delete", async (c) => {
      if (await resourceStore(opts).delete(c.req.param("id"), principal(c).actor)) gateway.resourcesChanged?.();
      return c.redirect("/resources");
    })
    .post("/resources/:id/authorize", async (c) => {
      const f = await c.req.parseBody();
      try {
        const expiresAt = parseExpiresAt(formText(f, "expiresAt"), "expiresAt");
        await resourceStore(opts).authorize({ publicKey: formText(f, "publicKey"), resourceId: c.req.param("id"), expiresAt }, principal(c).actor, otherPeers(opts));
        gateway.resourcesChanged?.();
        return c.redirect("/resources");
      } catch (err) {
        return refused(c, err, {});
      }
    });
}
