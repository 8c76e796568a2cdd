// The Peers pages: list (search and sort in the query string, so they work without JS; the config
// file's peers read-only), add (keys generated when none is given), edit, delete, client config.
// Creation and updates for pages and API go through the same functions below, so the defaults
// and the refusals (a key or an address another peer has) are the same wherever a peer is made.
import { html } from "hono/html";
import { Hono, type Context } from "hono";
import QRCode from "qrcode";
import { filePeerLabel, type AddressOwner } from "../../src/config/index.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import { parseServedBy } from "../../src/cluster/served-by.ts";
import { parseCidr } from "../../src/ip/address.ts";
import { parsePeerInput, PeerValidationError, type PeerInput, type PeerRow } from "../../src/store/index.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { capFields, listQuery } from "../input.ts";
import type { AdminOptions, FilePeerView } from "../types.ts";
import * as v from "../views/peers.ts";
import { page, peerStore, principal, session } from "./common.ts";
import { historyLink } from "./history.ts";

/** The config file's peers as the overlap check sees them (their addresses come first). */
export function fileOwners(opts: AdminOptions): AddressOwner[] {
  return (opts.gateway.filePeers?.() ?? []).map((f) => ({ label: filePeerLabel(f.line, f.public_key), allowedIPs: f.allowed_ips.map((a) => parseCidr(a)) }));
}

/** A key the config file already has: the store must not hold it too (sync would ignore the row). */
function assertNotFileKey(opts: AdminOptions, publicKey: string | undefined): void {
  const f = publicKey === undefined ? undefined : opts.gateway.filePeers?.().find((p) => p.public_key === publicKey);
  if (f) throw new PeerValidationError({ publicKey: `"${publicKey}" is already ${filePeerLabel(f.line, f.public_key)}` });
}

export interface CreatedPeer {
  row: PeerRow;
  /** The client's wg-quick config, when its keys were generated here. */
  clientConfig?: string;
}

/**
 * Creates a peer from form or JSON fields; generates keys when no public key was given.
 * `form`: an HTML form, where an unchecked "enabled" box is simply absent (so absent = off);
 * in JSON absent means the default, enabled, and absent AllowedIPs get the next free address.
 */
export function peerCreator(opts: AdminOptions) {
  return async (raw: Record<string, unknown>, actor: string, how: { form: boolean; requestHost?: string }): Promise<CreatedPeer> => {
    const peers = peerStore(opts);
    let clientPrivateKey: string | undefined;
    const input = { ...raw } as Record<string, unknown>;
    if (how.form) input.enabled = raw.enabled ?? "off";
    if (!how.form && (raw.allowedIps === undefined || raw.allowedIps === "")) {
      try {
        input.allowedIps = `${opts.gateway.nextAddress()}/32`;
      } catch (err) {
        throw new PeerValidationError({ allowedIps: `is required: no free address to pick (${(err as Error).message})` });
      }
    }
    if (!String(raw.publicKey ?? "").trim()) {
      const k = generatePrivateKey();
      clientPrivateKey = encodeKey(k);
      input.publicKey = encodeKey(publicKeyOf(k));
      input.presharedKey = encodeKey(generatePrivateKey());
    }
    const parsed = parsePeerInput(input) as PeerInput;
    assertNotFileKey(opts, parsed.publicKey);
    const row = await peers.create({ ...parsed, clientPrivateKey }, actor, fileOwners(opts));
    opts.gateway.peersChanged();
    const clientConfig = clientPrivateKey ? opts.gateway.clientConfig(row, how.requestHost ?? "localhost") : undefined;
    return { row, clientConfig };
  };
}

/** Applies a (partial) update; throws PeerValidationError naming the field, InputError for an unknown id. */
export function peerUpdater(opts: AdminOptions) {
  return async (id: string, raw: Record<string, unknown>, actor: string, partial: boolean): Promise<PeerRow> => {
    const peers = peerStore(opts);
    if (!(await peers.get(id))) throw new PeerNotFound(id);
    const patch = parsePeerInput(raw, partial);
    assertNotFileKey(opts, patch.publicKey);
    const row = await peers.update(id, patch, actor, fileOwners(opts));
    opts.gateway.peersChanged();
    return row;
  };
}

export class PeerNotFound extends Error {
  constructor(readonly id: string) {
    super(`no peer ${JSON.stringify(id.slice(0, 64))}`);
    this.name = "PeerNotFound";
  }
}

/** Search text for a peer: name, key, addresses, endpoint. */
function matches(q: string, ...fields: (string | null | undefined)[]): boolean {
  if (!q) return true;
  const needle = q.toLowerCase();
  return fields.some((f) => f?.toLowerCase().includes(needle));
}

/** Reads ?q=&sort=&dir=; a value not understood falls back to the default and is said on the page. */
export function peerListQuery(query: Record<string, string | undefined>): v.PeerListQuery {
  return listQuery(query, v.PEER_SORTS, "name", (sort) => (sort === "name" ? "asc" : "desc"));
}

export function peerRoutes(opts: AdminOptions) {
  const { gateway } = opts;
  const createPeer = peerCreator(opts);
  const updatePeer = peerUpdater(opts);
  const formValues = (f: Record<string, unknown>): v.PeerFormValues => ({
    name: String(f.name ?? ""), publicKey: String(f.publicKey ?? ""), allowedIps: String(f.allowedIps ?? ""), endpoint: String(f.endpoint ?? ""),
    persistentKeepalive: String(f.persistentKeepalive ?? "0"), expiresAt: String(f.expiresAt ?? ""), enabled: f.enabled === "on",
    servedBy: [f.servedBy ?? []].flat().map(String).filter(Boolean),
  });
  /** Cluster mode: the gateways a peer may be served by (with this one marked); undefined standalone. */
  const gatewayChoices = async (): Promise<v.GatewayChoice[] | undefined> => {
    if (!opts.cluster) return undefined;
    const gws = await opts.cluster.gateways();
    return gws.map((g) => ({ ...g, self: g.gid === opts.cluster!.gid }));
  };
  const peersView = async (c: Context<AdminEnv>, values: v.PeerFormValues, errors: Record<string, string>, status: 200 | 400) => {
    const query = peerListQuery(c.req.query());
    const handshakes = new Map(gateway.connections().map((x) => [x.public_key, x.last_handshake]));
    const all = await peerStore(opts).list();
    const gateways = await gatewayChoices();
    const peers = sortPeers(all.filter((p) => matches(query.q, p.name, p.publicKey, p.allowedIps, p.endpoint))
      .map((p) => ({ ...p, lastHandshake: handshakes.get(p.publicKey) ?? null })), query);
    const files: FilePeerView[] = gateway.filePeers?.() ?? [];
    const filePeers = files.filter((p) => matches(query.q, p.public_key, p.endpoint, ...p.allowed_ips))
      .map((p) => ({ ...p, lastHandshake: handshakes.get(p.public_key) ?? null }))
      // File peers have no name or creation time: by handshake when asked, else in file order.
      .sort((a, b) => (query.sort === "handshake" ? (query.dir === "asc" ? 1 : -1) * cmpTime(a.lastHandshake, b.lastHandshake) || a.line - b.line : a.line - b.line));
    const csrf = session(c)?.csrfToken ?? "";
    return page(c, "Peers", v.peersPage({
      peers, total: all.length, filePeers, fileTotal: files.length, query, csrf, now: Date.now(), gateways,
      form: v.peerForm({ action: "/peers", csrf, values, errors, submit: "Add peer", keyHint: "empty: generate keys", gateways }),
    }), status);
  };
  const configFor = async (c: Context<AdminEnv>) => {
    const p = await peerStore(opts).get(c.req.param("id") ?? "");
    const text = p && gateway.clientConfig(p, new URL(c.req.url).hostname);
    return p && text ? { p, text } : undefined;
  };
  const nextAddress = (): string => {
    try {
      return `${gateway.nextAddress()}/32`;
    } catch {
      return ""; // no free address: the form says so when submitted
    }
  };

  return new Hono<AdminEnv>()
    .get("/peers", (c) => peersView(c, { allowedIps: nextAddress(), enabled: true }, {}, 200))
    .post("/peers", async (c) => {
      // `all`: the "Served by" checkboxes send one value each.
      const form = await c.req.parseBody({ all: true });
      try {
        const { row } = await createPeer(form, principal(c).actor, { form: true });
        return c.redirect(row.clientPrivateKey ? `/peers/${encodeURIComponent(row.id)}/config` : "/peers");
      } catch (err) {
        if (err instanceof PeerValidationError) return peersView(c, formValues(form), capFields(err.fields), 400);
        throw err;
      }
    })
    .get("/peers/:id", async (c) => {
      const p = await peerStore(opts).get(c.req.param("id"));
      if (!p) return c.text("no such peer", 404);
      const values: v.PeerFormValues = { name: p.name, publicKey: p.publicKey, allowedIps: p.allowedIps, endpoint: p.endpoint ?? "", persistentKeepalive: String(p.persistentKeepalive),
        expiresAt: p.expiresAt ? new Date(p.expiresAt).toISOString().slice(0, 10) : "", enabled: p.enabled, servedBy: parseServedBy(p.servedBy) ?? [] };
      const gateways = await gatewayChoices();
      return page(c, `Peer ${p.name}`, html`${historyLink(opts, p.publicKey)}${gateways ? v.servedBySummary(p.servedBy, gateways) : ""}${v.peerForm({ action: `/peers/${encodeURIComponent(p.id)}`, csrf: session(c)?.csrfToken ?? "", values, errors: {}, submit: "Save", gateways })}`);
    })
    .post("/peers/:id", async (c) => {
      const id = c.req.param("id");
      const form = await c.req.parseBody({ all: true });
      try {
        await updatePeer(id, { ...form, enabled: form.enabled ?? "off" }, principal(c).actor, false);
        return c.redirect("/peers");
      } catch (err) {
        if (err instanceof PeerNotFound) return c.text("no such peer", 404);
        if (err instanceof PeerValidationError) {
          return page(c, "Edit peer", v.peerForm({ action: `/peers/${encodeURIComponent(id)}`, csrf: session(c)?.csrfToken ?? "", values: formValues(form), errors: capFields(err.fields), submit: "Save", gateways: await gatewayChoices() }), 400);
        }
        throw err;
      }
    })
    .post("/peers/:id/delete", async (c) => {
      await peerStore(opts).delete(c.req.param("id"), principal(c).actor);
      gateway.peersChanged();
      return c.redirect("/peers");
    })
    .get("/peers/:id/config", async (c) => {
      const r = await configFor(c);
      if (!r) return c.text("no client config for this peer (its keys were not generated here)", 404);
      const svg = await QRCode.toString(r.text, { type: "svg", errorCorrectionLevel: "M", margin: 1, width: 280 });
      return page(c, `Config ${r.p.name}`, v.clientConfigPage(r.p.name, r.text, svg));
    })
    .get("/peers/:id/wg.conf", async (c) => {
      const r = await configFor(c);
      if (!r) return c.text("no client config for this peer", 404);
      return c.body(r.text, 200, { "content-type": "text/plain; charset=utf-8", "content-disposition": `attachment; filename="${r.p.name.replace(/[^A-Za-z0-9_-]/g, "_")}.conf"` });
    });
}

/** A peer never seen sorts as the oldest handshake (first ascending, last descending). */
function cmpTime(a: string | null, b: string | null): number {
  return (a ? Date.parse(a) : -Infinity) - (b ? Date.parse(b) : -Infinity) || 0;
}

function sortPeers(list: v.PeerListItem[], q: v.PeerListQuery): v.PeerListItem[] {
  const sign = q.dir === "asc" ? 1 : -1;
  const byName = (a: v.PeerListItem, b: v.PeerListItem) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id);
  const key: Record<v.PeerSort, (a: v.PeerListItem, b: v.PeerListItem) => number> = {
    name: byName,
    created: (a, b) => a.createdAt - b.createdAt,
    handshake: (a, b) => cmpTime(a.lastHandshake, b.lastHandshake),
  };
  return [...list].sort((a, b) => sign * key[q.sort](a, b) || byName(a, b));
}
