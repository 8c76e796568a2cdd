// A peer's history (page and API), and what /connections/:cid shows for a cid that is not live:
// cids are new at each gateway start, so one from an audit row, a log line or a Sentry link of an
// earlier run resolves through the store's cid history to its peer — never a bare "no connection".
import type { Context } from "hono";
import { Hono } from "hono";
import { html } from "hono/html";
import type { Store } from "../../src/store/index.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { InputError, echo } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import { historyPage, peerLabel, unknownCidPage, type PeerHistoryView } from "../views/history.ts";
import { page, requireStore } from "./common.ts";

export interface ResolvedPeer {
  peerId: string;
  name: string | null;
  source: "file" | "store";
  keys: string[];
}

/** A peer by stable id or public key: the store's identities, then its live peers and file peers. */
export function resolvePeer(opts: AdminOptions, idOrKey: string): ResolvedPeer | undefined {
  const store = opts.store;
  const known = store?.history.resolve(idOrKey);
  const row = store?.peers.get(known?.peerId ?? idOrKey) ?? store?.peers.byPublicKey(idOrKey);
  if (row) {
    // The row is the truth for its current key and name; identities add the keys it had before.
    const keys = [row.publicKey, ...(known?.keys ?? []).filter((k) => k !== row.publicKey)];
    return { peerId: row.id, name: row.name, source: "store", keys };
  }
  if (known) return known;
  const file = opts.gateway.filePeers?.().find((f) => f.id === idOrKey || f.public_key === idOrKey);
  return file ? { peerId: file.id, name: null, source: "file", keys: [file.public_key] } : undefined;
}

/** "Peer <name> (<stable id>) · History", above a live connection's page. */
export function historyLink(opts: AdminOptions, publicKey: string) {
  const p = resolvePeer(opts, publicKey);
  if (!p) return "";
  return html`<p class="peer-line" data-testid="peer-of-connection">Peer <strong>${peerLabel(p)}</strong> <span class="mono muted">${p.peerId}</span> · <a href="/history/${encodeURIComponent(p.peerId)}" data-testid="history-link">History</a> · <a href="/audit?peer=${encodeURIComponent(p.peerId)}">Audit trail</a></p>`;
}

/** `?peer=` of the audit filters: the subjects (keys) of that peer's rows; unknown is the caller's 400. */
export function peerSubjects(opts: AdminOptions, peer: string): string[] {
  const p = resolvePeer(opts, peer);
  if (!p) throw new InputError("peer", `${echo(peer)} is not a known peer id or public key`);
  return p.keys;
}

function history(opts: AdminOptions, store: Store, p: ResolvedPeer, viaCid?: PeerHistoryView["viaCid"]): PeerHistoryView {
  const current = opts.gateway.connections().find((c) => p.keys.includes(c.public_key));
  const cids = store.history.cidsOf(p.keys);
  return {
    ...p,
    current,
    cids,
    audit: store.audit.query({ subjects: p.keys }, { limit: 100, offset: 0 }),
    logs: opts.logs?.peerLines(p.keys, [...new Set([...(current ? [current.cid] : []), ...cids.map((r) => r.cid)])], 300) ?? [],
    viaCid,
    gid: opts.gateway.gid,
  };
}

function historyJson(h: PeerHistoryView) {
  return {
    peer: { id: h.peerId, name: h.name, label: peerLabel(h), source: h.source, public_key: h.keys[0], earlier_keys: h.keys.slice(1) },
    current: h.current ? { cid: h.current.cid, state: h.current.state, link: `/connections/${h.current.cid}` } : null,
    via_cid: h.viaCid ? { cid: h.viaCid.cid, gid: h.viaCid.row.gid, first_seen: new Date(h.viaCid.row.firstSeen).toISOString(), last_seen: new Date(h.viaCid.row.lastSeen).toISOString() } : undefined,
    connections: h.cids.map((r) => ({ gid: r.gid, cid: r.cid, first_seen: new Date(r.firstSeen).toISOString(), last_seen: new Date(r.lastSeen).toISOString() })),
    audit: h.audit,
    logs: h.logs,
  };
}

/** The peer an old cid belonged to (the newest record of it), or undefined. */
function byOldCid(opts: AdminOptions, store: Store, cid: number): PeerHistoryView | undefined {
  const row = store.history.byCid(cid)[0];
  if (!row) return undefined;
  const p = resolvePeer(opts, row.publicKey) ?? { peerId: row.publicKey, name: null, source: "file" as const, keys: [row.publicKey] };
  return history(opts, store, p, { cid, row });
}

/** /connections/:cid when `cid` is not live: that peer's history, or a page saying the cid is unknown. */
export function oldConnectionPage(opts: AdminOptions, c: Context<AdminEnv>, cid: number) {
  const h = opts.store && byOldCid(opts, opts.store, cid);
  if (h) return page(c, `Connection ${cid} (earlier run)`, historyPage(h));
  return page(c, `Connection ${cid}`, unknownCidPage(cid, opts.store ? "cid history is kept as long as the audit trail" : "no data dir"), 404);
}

export function historyRoutes(opts: AdminOptions) {
  const notFound = (what: string) => ({ error: "not_found", peer: what.slice(0, 100) });
  return new Hono<AdminEnv>()
    .get("/history/:peer", (c) => {
      const store = requireStore(opts);
      const p = resolvePeer(opts, c.req.param("peer"));
      if (!p) return page(c, "History", unknownPeer(c.req.param("peer")), 404);
      return page(c, `History of ${peerLabel(p)}`, historyPage(history(opts, store, p)));
    })
    .get("/api/history/:peer", (c) => {
      const store = requireStore(opts);
      const p = resolvePeer(opts, c.req.param("peer"));
      return p ? c.json(historyJson(history(opts, store, p))) : c.json(notFound(c.req.param("peer")), 404);
    })
    // An old cid, as a machine asks it: which peer, and its connection now (if any).
    .get("/api/connections/:cid/history", (c) => {
      const store = requireStore(opts);
      const cid = Number(c.req.param("cid"));
      if (!Number.isInteger(cid) || cid < 0 || cid > 0xffffff) throw new InputError("cid", `${echo(c.req.param("cid"))} is not a connection id (0–16777215)`);
      const live = opts.gateway.connections().find((x) => x.cid === cid);
      const p = live ? resolvePeer(opts, live.public_key) : undefined;
      const h = p ? history(opts, store, p) : byOldCid(opts, store, cid);
      return h ? c.json(historyJson(h)) : c.json({ error: "not_found", cid }, 404);
    });
}

function unknownPeer(id: string) {
  return html`<h1>History</h1><p class="empty">${id.slice(0, 100)} is not a peer id or public key this gateway has seen.</p>`;
}
