// The Peers pages: list, add (keys generated when none is given), edit, delete, client config.
import { Hono, type Context } from "hono";
import QRCode from "qrcode";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import { parsePeerInput, PeerValidationError, type PeerInput, type PeerRow } from "../../src/store/index.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { capFields } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import * as v from "../views.ts";
import { page, principal, requireStore, session } from "./common.ts";

/** Creates a peer from form or JSON fields; generates keys when no public key was given. */
export function peerCreator(opts: AdminOptions) {
  return (raw: Record<string, unknown>, actor: string): PeerRow => {
    const s = requireStore(opts);
    let clientPrivateKey: string | undefined;
    const input = { ...raw, enabled: raw.enabled ?? "off" } as Record<string, unknown>;
    if (!String(raw.publicKey ?? "").trim()) {
      const k = generatePrivateKey();
      clientPrivateKey = encodeKey(k);
      input.publicKey = encodeKey(publicKeyOf(k));
      input.presharedKey = encodeKey(generatePrivateKey());
    }
    const parsed = parsePeerInput(input) as PeerInput;
    const row = s.peers.create({ ...parsed, clientPrivateKey }, actor);
    opts.gateway.peersChanged();
    return row;
  };
}

export function peerRoutes(opts: AdminOptions) {
  const { gateway } = opts;
  const createPeer = peerCreator(opts);
  const formValues = (f: Record<string, unknown>): v.PeerFormValues => ({
    name: String(f.name ?? ""), publicKey: String(f.publicKey ?? ""), allowedIps: String(f.allowedIps ?? ""), endpoint: String(f.endpoint ?? ""),
    persistentKeepalive: String(f.persistentKeepalive ?? "0"), expiresAt: String(f.expiresAt ?? ""), enabled: f.enabled === "on",
  });
  const peersView = (c: Context<AdminEnv>, values: v.PeerFormValues, errors: Record<string, string>, status: 200 | 400) =>
    page(c, "Peers", v.peersPage(requireStore(opts).peers.list(), session(c)?.csrfToken ?? "",
      v.peerForm({ action: "/peers", csrf: session(c)?.csrfToken ?? "", values, errors, submit: "Add peer", keyHint: "empty: generate keys" })), status);
  const configFor = (c: Context<AdminEnv>) => {
    const p = requireStore(opts).peers.get(c.req.param("id") ?? "");
    const text = p && gateway.clientConfig(p, new URL(c.req.url).hostname);
    return p && text ? { p, text } : undefined;
  };

  return new Hono<AdminEnv>()
    .get("/peers", (c) => peersView(c, { allowedIps: `${gateway.nextAddress()}/32`, enabled: true }, {}, 200))
    .post("/peers", async (c) => {
      const form = await c.req.parseBody();
      try {
        const row = createPeer(form, principal(c).actor);
        return c.redirect(row.clientPrivateKey ? `/peers/${encodeURIComponent(row.id)}/config` : "/peers");
      } catch (err) {
        if (err instanceof PeerValidationError) return peersView(c, formValues(form), capFields(err.fields), 400);
        throw err;
      }
    })
    .get("/peers/:id", (c) => {
      const p = requireStore(opts).peers.get(c.req.param("id"));
      if (!p) return c.text("no such peer", 404);
      const values: v.PeerFormValues = { name: p.name, publicKey: p.publicKey, allowedIps: p.allowedIps, endpoint: p.endpoint ?? "", persistentKeepalive: String(p.persistentKeepalive),
        expiresAt: p.expiresAt ? new Date(p.expiresAt).toISOString().slice(0, 10) : "", enabled: p.enabled };
      return page(c, `Peer ${p.name}`, v.peerForm({ action: `/peers/${encodeURIComponent(p.id)}`, csrf: session(c)?.csrfToken ?? "", values, errors: {}, submit: "Save" }));
    })
    .post("/peers/:id", async (c) => {
      const id = c.req.param("id");
      const form = await c.req.parseBody();
      try {
        const patch = parsePeerInput({ ...form, enabled: form.enabled ?? "off" });
        requireStore(opts).peers.update(id, patch, principal(c).actor);
        gateway.peersChanged();
        return c.redirect("/peers");
      } catch (err) {
        if (err instanceof PeerValidationError) {
          return page(c, "Edit peer", v.peerForm({ action: `/peers/${encodeURIComponent(id)}`, csrf: session(c)?.csrfToken ?? "", values: formValues(form), errors: capFields(err.fields), submit: "Save" }), 400);
        }
        throw err;
      }
    })
    .post("/peers/:id/delete", (c) => {
      requireStore(opts).peers.delete(c.req.param("id"), principal(c).actor);
      gateway.peersChanged();
      return c.redirect("/peers");
    })
    .get("/peers/:id/config", async (c) => {
      const r = configFor(c);
      if (!r) return c.text("no client config for this peer (its keys were not generated here)", 404);
      const svg = await QRCode.toString(r.text, { type: "svg", errorCorrectionLevel: "M", margin: 1, width: 280 });
      return page(c, `Config ${r.p.name}`, v.clientConfigPage(r.p.name, r.text, svg));
    })
    .get("/peers/:id/wg.conf", (c) => {
      const r = configFor(c);
      if (!r) return c.text("no client config for this peer", 404);
      return c.body(r.text, 200, { "content-type": "text/plain; charset=utf-8", "content-disposition": `attachment; filename="${r.p.name.replace(/[^A-Za-z0-9_-]/g, "_")}.conf"` });
    });
}
