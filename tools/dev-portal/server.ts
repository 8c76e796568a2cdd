// The dev portal over HTTP: WebSocket endpoints `/gateway/websocket` and `/client/websocket` (token in
// the query as Firezone sends it; a wrong one gets 401 before the upgrade, like the real portal), the
// page at `/` and its form actions, and `/api/state` for scripts. One Bun.serve, loopback by default.
import type { Server, ServerWebSocket } from "bun";
import { DevPortal, type Session, type Side } from "./portal.ts";
import { renderPage } from "./page.ts";
import type { Seed } from "./seed.ts";

export interface DevPortalServer {
  portal: DevPortal;
  /** http://host:port — what FIREZONE_API_URL points at. */
  url: string;
  port: number;
  /** Closes every socket and the listener. */
  stop(): Promise<void>;
}

interface SocketData {
  side: Side;
  id: string;
  info: { externalId: string; name: string; publicKey: string; userAgent: string };
  session?: Session;
}

/** Starts a dev portal. Pass `portal` to keep its state across a restart of the listener. */
export function startDevPortal(opts: { seed: Seed; hostname?: string; port?: number; portal?: DevPortal }): DevPortalServer {
  const portal = opts.portal ?? new DevPortal(opts.seed);
  const server: Server<SocketData> = Bun.serve<SocketData>({
    hostname: opts.hostname ?? "127.0.0.1",
    port: opts.port ?? 0,
    async fetch(req, srv) {
      const url = new URL(req.url);
      const ws = /^\/(gateway|client)\/websocket$/.exec(url.pathname);
      if (ws && req.method === "GET") {
        const side = ws[1] as Side;
        const vsn = url.searchParams.get("vsn");
        if (vsn && !vsn.startsWith("1.")) return problem(400, "unsupported_vsn", `this portal speaks Phoenix v1 frames only (got vsn=${vsn})`);
        const device = portal.authenticate(side, url.searchParams.get("token") ?? "");
        if (!device) return problem(401, "invalid_token", "no device has this token");
        const data: SocketData = {
          side,
          id: device.id,
          info: {
            externalId: url.searchParams.get("external_id") ?? "",
            name: url.searchParams.get("name") ?? device.name,
            publicKey: url.searchParams.get("public_key") ?? "",
            userAgent: req.headers.get("user-agent") ?? "",
          },
        };
        if (srv.upgrade(req, { data })) return undefined;
        return problem(400, "not_websocket", "expected a WebSocket upgrade");
      }
      if (url.pathname === "/" && req.method === "GET") {
        return new Response(renderPage(portal, url.searchParams.get("notice") ?? undefined), { headers: { "content-type": "text/html; charset=utf-8" } });
      }
      if (url.pathname === "/api/state" && req.method === "GET") return Response.json(snapshot(portal));
      if (req.method === "POST" && ["/policies", "/policies/revoke", "/flows/expiry"].includes(url.pathname)) {
        // A dev tool on loopback, but a page elsewhere must still not drive it: same origin only.
        const origin = req.headers.get("origin");
        if (origin && origin !== url.origin) return new Response("cross-origin form post refused", { status: 403 });
        const form = await req.formData();
        const client = String(form.get("client") ?? "");
        const resource = String(form.get("resource") ?? "");
        const seconds = Number(form.get("expires_in") ?? "") || undefined;
        let notice: string;
        try {
          if (url.pathname === "/policies") {
            portal.authorize(client, resource, seconds);
            notice = `authorized ${client} → ${resource}`;
          } else if (url.pathname === "/policies/revoke") {
            portal.revoke(client, resource);
            notice = `revoked ${client} → ${resource}`;
          } else {
            portal.setExpiry(client, resource, Math.floor(Date.now() / 1000) + (seconds ?? 60));
            notice = `expiry of ${client} → ${resource} moved`;
          }
        } catch (err) {
          notice = (err as Error).message;
        }
        return new Response(null, { status: 303, headers: { location: `/?notice=${encodeURIComponent(notice)}` } });
      }
      return new Response("not found", { status: 404 });
    },
    websocket: {
      open(ws: ServerWebSocket<SocketData>) {
        ws.data.session = portal.attach(ws.data.side, ws.data.id, { send: (t) => void ws.send(t), close: (c, r) => ws.close(c, r) }, ws.data.info);
      },
      message(ws: ServerWebSocket<SocketData>, message) {
        if (ws.data.session) portal.handleFrame(ws.data.session, typeof message === "string" ? message : new TextDecoder().decode(message));
      },
      close(ws: ServerWebSocket<SocketData>) {
        if (ws.data.session) portal.detach(ws.data.session);
      },
    },
  });
  return {
    portal,
    url: `http://${server.hostname}:${server.port}`,
    port: server.port!,
    async stop() {
      for (const s of [...portal.sessions.values()]) portal.detach(s);
      await server.stop(true);
    },
  };
}

function problem(status: number, code: string, detail: string): Response {
  return Response.json({ code, detail }, { status, headers: { "content-type": "application/problem+json" } });
}

export function snapshot(p: DevPortal) {
  return {
    gateways: p.seed.gateways.map((g) => ({ id: g.id, name: g.name, session: sessionView(p.sessions.get(`gateway:${g.id}`)) })),
    clients: p.seed.clients.map((c) => ({ id: c.id, name: c.name, session: sessionView(p.sessions.get(`client:${c.id}`)) })),
    policies: p.policyList(),
    flows: [...p.flows.values()].map(({ presharedKey: _psk, ...f }) => f),
  };
}

function sessionView(s: Session | undefined) {
  if (!s) return null;
  const { conn: _conn, ...rest } = s;
  return rest;
}
