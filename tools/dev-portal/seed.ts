// The dev portal's world, from a JSON or TOML file: gateways and clients (each with the token it
// connects with), resources (Firezone's shape, checked by the gateway's own parser), policies (which
// client may reach which resource) and relays. Validated with zod; errors name the field.
import { readFileSync } from "node:fs";
import { z } from "zod";
import { parseResource } from "../../src/gateway/index.ts";
import { Ipv4, Ipv6, PortalId, Relay } from "../../src/portal/schemas.ts";

const Device = z.object({
  id: PortalId,
  name: z.string().min(1),
  /** What this device puts in `?token=`; the portal answers 401 to any other. */
  token: z.string().min(8, "is shorter than 8 characters"),
  ipv4: Ipv4.optional(),
  ipv6: Ipv6.optional(),
});

export const SeedSchema = z
  .object({
    account_slug: z.string().default("dev"),
    gateways: z.array(Device.extend({ site: PortalId.default("site-1") })).min(1),
    clients: z.array(Device).default([]),
    resources: z.array(z.looseObject({ id: PortalId, gateways: z.array(PortalId).optional() })).default([]),
    policies: z.array(z.object({ client: PortalId, resource: PortalId, expires_in: z.number().int().positive().optional() })).default([]),
    relays: z.array(Relay).default([]),
  })
  .superRefine((s, ctx) => {
    const unique = (what: string, ids: string[]) => {
      const seen = new Set<string>();
      ids.forEach((id, i) => {
        if (seen.has(id)) ctx.addIssue({ code: "custom", path: [what, i], message: `"${id}" appears twice` });
        seen.add(id);
      });
    };
    unique("gateways", s.gateways.map((g) => g.id));
    unique("clients", s.clients.map((c) => c.id));
    unique("resources", s.resources.map((r) => r.id));
    unique("tokens", [...s.gateways, ...s.clients].map((d) => d.token));
    const gw = new Set(s.gateways.map((g) => g.id));
    const cl = new Set(s.clients.map((c) => c.id));
    const rs = new Set(s.resources.map((r) => r.id));
    s.resources.forEach((r, i) => {
      try {
        parseResource(r);
      } catch (err) {
        ctx.addIssue({ code: "custom", path: ["resources", i], message: (err as Error).message });
      }
      r.gateways?.forEach((g, j) => gw.has(g) || ctx.addIssue({ code: "custom", path: ["resources", i, "gateways", j], message: `no gateway "${g}"` }));
    });
    s.policies.forEach((p, i) => {
      if (!cl.has(p.client)) ctx.addIssue({ code: "custom", path: ["policies", i, "client"], message: `no client "${p.client}"` });
      if (!rs.has(p.resource)) ctx.addIssue({ code: "custom", path: ["policies", i, "resource"], message: `no resource "${p.resource}"` });
    });
  });

export type Seed = z.output<typeof SeedSchema>;

export function parseSeed(raw: unknown, source = "seed"): Seed {
  const r = SeedSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`${source}: ${i.path.join(".") || "(root)"}: ${i.message}`);
  }
  return r.data;
}

/** Reads a `.json` or `.toml` seed file. */
export function loadSeed(path: string): Seed {
  const text = readFileSync(path, "utf8");
  let raw: unknown;
  try {
    raw = path.endsWith(".toml") ? Bun.TOML.parse(text) : JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  return parseSeed(raw, path);
}
