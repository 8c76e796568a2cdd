// The admin server (Hono): server-rendered pages with htmx for live parts, and a JSON API that
// mirrors them. It reads the gateway only through `AdminGateway` (snapshots, never protocol
// objects) and writes only through the store, then asks the gateway to apply peer changes.
import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import QRCode from "qrcode";
import { z } from "zod";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { parseFilterText } from "../src/gateway/index.ts";
import { auditCsv, parseExpiresAt, PeerInput as PeerInputSchema, parsePeerInput, ResourceError, type AuditFilter, PeerValidationError, type PeerInput, type PeerRow, type Store } from "../src/store/index.ts";
import type { LogQuery, LogRing } from "../src/telemetry/log-ring.ts";
import { LEVELS, type TargetLogger } from "../src/telemetry/log.ts";
import type { ConnectionView } from "../src/telemetry/view.ts";
import { capFields, capQuoted, ECHO_MAX, echo, enumParam, InputError, intParam, jsonObject, knownFields, parseStrict, textParam, timeParam } from "./input.ts";
import { bodyLimits } from "./middleware/limits.ts";
import { SESSION_COOKIE, requireAuth, wantsHtml, type AdminEnv, type Principal } from "./auth.ts";
import { DEVICE_COOKIE, LoginThrottle } from "./middleware/login-throttle.ts";
import { loginCsrfToken, loginCsrfValid } from "./middleware/csrf.ts";
import { securityHeaders } from "./middleware/headers.ts";
import { requestFacts, sameOriginGuard, sameOriginPath } from "./middleware/origin.ts";
import * as v from "./views.ts";

/** Everything the admin may ask of the gateway. */
export interface AdminGateway {
  connections(): ConnectionView[];
  /** Prometheus text exposition. */
  metrics(): string | Promise<string>;
  /** Re-apply the store's peers to the data plane (after a change in the UI or API). */
  peersChanged(): void;
  /** Re-apply the store's resources and authorizations to the gateway's policy. */
  resourcesChanged?(): void;
  /** Every resource the policy enforces (file and API), with who may reach it. */
  resources?(): ResourceView[];
  /** A free tunnel address for a new peer. */
  nextAddress(): string;
  /** A wg-quick config for a peer created here, or undefined if we do not hold its private key. */
  clientConfig(peer: PeerRow, requestHost: string): string | undefined;
}

export interface ResourceView {
  id: string;
  name: string;
  type: string;
  address: string;
  filters: string;
  source: "file" | "api";
  authorizations: { cid: number; public_key?: string; expires_at: string | null }[];
}

export interface AdminOptions {
  gateway: AdminGateway;
  store?: Store;
  logs?: LogRing;
  /** GLASSGATE_ADMIN_TOKEN: a bearer token for the JSON API and /metrics. */
  envToken?: string;
  /** Mark cookies Secure (GLASSGATE_ADMIN_SECURE_COOKIE=1: served over HTTPS by a proxy we cannot see). */
  secureCookie?: boolean;
  /**
   * Addresses of reverse proxies whose X-Forwarded-Proto / X-Forwarded-For are believed
   * (GLASSGATE_TRUSTED_PROXY); with `https` from one, cookies are Secure and the origin is https.
   */
  trustedProxies?: string[];
  /** Wall clock in Unix ms (login throttling); tests pass a fake one. */
  clock?: () => number;
  /** Where unexpected errors are logged (with their cause chain). */
  log?: TargetLogger;
}

/** What a JSON body may contain (values are validated by the store's parsers). */
const PEER_FIELDS = knownFields(Object.keys(PeerInputSchema.shape));
const RESOURCE_FIELDS = knownFields(["type", "id", "name", "address"]).extend({
  filters: z.array(knownFields(["protocol", "port_range_start", "port_range_end"])).optional(),
});

const AUTHORIZATION_BODY = z.strictObject({
  public_key: z.string({ message: "is required: a peer's public key" }),
  resource_id: z.string({ message: "is required: the id of a resource managed here" }),
  expires_at: z.unknown().optional(),
});
const RESOURCE_STATUS = { invalid: 400, conflict: 409, not_found: 404 } as const;

const HTMX = readFileSync(createRequire(import.meta.url).resolve("htmx.org/dist/htmx.min.js"), "utf8");
const CSS = readFileSync(new URL("./static/app.css", import.meta.url), "utf8");

function principal(c: Context<AdminEnv>): Principal {
  return c.get("principal");
}

function session(c: Context<AdminEnv>) {
  const p = principal(c);
  return p.kind === "session" ? p.session : undefined;
}

function page(c: Context<AdminEnv>, title: string, body: ReturnType<typeof v.layout>, status: 200 | 400 | 404 | 409 = 200) {
  const s = session(c);
  return c.html(v.layout({ title, path: c.req.path, user: s?.username ?? principal(c).actor, csrf: s?.csrfToken }, body), status);
}


/** A connection id: 24 bits (see DESIGN.md, session index). */
const CID = { min: 0, max: 0xffffff };
const LOG_LEVELS = LEVELS.filter((l) => l !== "off");

function logQuery(q: Record<string, string | undefined>): LogQuery {
  const out: LogQuery = { limit: intParam(q, "limit", { min: 1, max: 2000 }) ?? 200 };
  const cid = intParam(q, "cid", CID);
  if (cid !== undefined) out.cid = cid;
  const gid = textParam(q, "gid");
  if (gid) out.gid = gid;
  const rid = textParam(q, "rid");
  if (rid) out.rid = rid;
  const level = enumParam(q, "level", LOG_LEVELS);
  if (level) out.level = level;
  const target = textParam(q, "target");
  if (target) out.target = target;
  const since = timeParam(q, "since");
  if (since) out.since = since;
  return out;
}

function auditFilter(q: Record<string, string | undefined>): AuditFilter {
  const f: AuditFilter = {};
  const action = textParam(q, "action");
  if (action) f.action = action;
  const actor = textParam(q, "actor");
  if (actor) f.actor = actor;
  const subject = textParam(q, "subject");
  if (subject) f.subject = subject;
  const cid = intParam(q, "cid", CID);
  if (cid !== undefined) f.cid = cid;
  return f;
}

export function createAdminApp(opts: AdminOptions): Hono<AdminEnv> {
  const app = new Hono<AdminEnv>();
  const { gateway, store, logs } = opts;
  const throttle = new LoginThrottle();
  const clock = opts.clock ?? Date.now;

  // Order matters: headers go on every answer; bodies are bounded and cross-site mutations refused
  // before anything parses a body or looks at credentials.
  app.use("*", securityHeaders());
  app.use("*", bodyLimits());
  app.use("*", requestFacts(opts.trustedProxies ?? []));
  app.use("*", sameOriginGuard());
  const secure = (c: Context<AdminEnv>) => opts.secureCookie === true || c.get("facts").https;

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/static/htmx.min.js", (c) => c.body(HTMX, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "public, max-age=86400" }));
  app.get("/static/app.css", (c) => c.body(CSS, 200, { "content-type": "text/css; charset=utf-8", "cache-control": "public, max-age=3600" }));

  // ── login ──
  app.get("/login", (c) => c.html(v.loginPage({ next: c.req.query("next"), csrf: loginCsrfToken(c, secure(c)) })));
  app.post("/login", async (c) => {
    const { remote, origin } = c.get("facts");
    const form = await c.req.parseBody();
    const username = String(form.username ?? "");
    const password = String(form.password ?? "");
    const next = String(form.next ?? "/");
    const csrf = loginCsrfToken(c, secure(c));
    if (!loginCsrfValid(c, form._csrf)) {
      return c.html(v.loginPage({ error: "The login form expired or came from another site; please try again.", next, csrf }), 403);
    }
    // Counted before the password is checked: see middleware/login-throttle.ts.
    const admission = throttle.admit(remote, username, getCookie(c, DEVICE_COOKIE), clock());
    if (!admission.ok) {
      const seconds = Math.ceil(admission.retryAfterMs / 1000);
      if (admission.audit) {
        store?.audit.record({ actor: `anonymous@${remote}`, action: "admin.login_throttled", subject: username.slice(0, 64),
          reason: `${admission.audit.refused} attempt(s) refused: too many for this ${admission.scope}; next in ${seconds} s` });
      }
      return c.html(v.loginPage({ error: `Too many login attempts; try again in ${seconds} s.`, next, csrf }), 429, { "retry-after": String(seconds) });
    }
    const s = store ? await store.auth.login(username, password, remote) : undefined;
    admission.settle(s !== undefined);
    if (!s) return c.html(v.loginPage({ error: "Wrong username or password.", next, csrf }), 401);
    const cookie = { httpOnly: true, sameSite: "Strict", secure: secure(c) } as const;
    setCookie(c, SESSION_COOKIE, s.id, { ...cookie, path: "/", maxAge: 12 * 3600 });
    if (!admission.trustedDevice) setCookie(c, DEVICE_COOKIE, throttle.trustDevice(s.username), { ...cookie, path: "/login", maxAge: 30 * 24 * 3600 });
    return c.redirect(sameOriginPath(next, origin));
  });

  app.use("*", requireAuth({ auth: store?.auth, envToken: opts.envToken }));

  app.post("/logout", (c) => {
    const s = session(c);
    if (s) store?.auth.logout(s.id);
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    return c.redirect("/login");
  });

  // ── pages ──
  const now = () => Date.now();
  app.get("/", (c) => page(c, "Overview", v.overview(gateway.connections(), store?.peers.list().length ?? 0, logs?.query({ level: "warn", limit: 1000 }).length ?? 0, now())));
  app.get("/connections", (c) => page(c, "Connections", v.connectionsPage(gateway.connections(), now())));
  app.get("/connections/rows", (c) => c.html(v.connectionRows(gateway.connections(), now())));
  app.get("/connections/:cid", (c) => {
    const cid = intParam(c.req.param(), "cid", CID)!;
    const conn = gateway.connections().find((x) => x.cid === cid);
    if (!conn) return c.text(`no connection ${cid}`, 404);
    const traffic = store?.traffic.series(conn.public_key, now() - 24 * 3600_000) ?? [];
    return page(c, `Connection ${cid}`, v.connectionDetail(conn, logs?.query({ cid, limit: 500 }) ?? [], traffic, now()));
  });
  app.get("/logs", (c) => {
    const q = c.req.query();
    return page(c, "Logs", v.logsPage(q, logs?.query(logQuery(q)) ?? []));
  });
  app.get("/logs/rows", (c) => c.html(v.logRows(logs?.query(logQuery(c.req.query())) ?? [])));
  app.get("/errors", (c) => page(c, "Errors", v.errorsPage(logs?.query({ level: "warn", limit: 200 }) ?? [])));

  app.get("/audit", (c) => {
    const q = c.req.query();
    const size = 50;
    const filter = auditFilter(q);
    const pageNo = intParam(q, "page", { min: 1, max: 1_000_000 }) ?? 1;
    const r = store?.audit.query(filter, { limit: size, offset: (pageNo - 1) * size }) ?? { rows: [], total: 0 };
    const keep = Object.fromEntries(Object.entries(filter).map(([k, val]) => [k, String(val)]));
    return page(c, "Audit", v.auditPage(r.rows, r.total, pageNo, size, keep));
  });
  app.get("/audit.csv", (c) => {
    const rows = store?.audit.query(auditFilter(c.req.query()), { limit: 100_000, offset: 0 }).rows ?? [];
    return c.body(auditCsv(rows), 200, { "content-type": "text/csv; charset=utf-8", "content-disposition": 'attachment; filename="glassgate-audit.csv"' });
  });

  // ── peers ──
  const requireStore = () => {
    if (!store) throw new Error("peers need the data dir's database");
    return store;
  };
  const formValues = (f: Record<string, unknown>): v.PeerFormValues => ({
    name: String(f.name ?? ""), publicKey: String(f.publicKey ?? ""), allowedIps: String(f.allowedIps ?? ""), endpoint: String(f.endpoint ?? ""),
    persistentKeepalive: String(f.persistentKeepalive ?? "0"), expiresAt: String(f.expiresAt ?? ""), enabled: f.enabled === "on",
  });
  const peersView = (c: Context<AdminEnv>, values: v.PeerFormValues, errors: Record<string, string>, status: 200 | 400, notice?: ReturnType<typeof v.layout>) =>
    page(c, "Peers", v.peersPage(requireStore().peers.list(), session(c)?.csrfToken ?? "",
      v.peerForm({ action: "/peers", csrf: session(c)?.csrfToken ?? "", values, errors, submit: "Add peer", keyHint: "empty: generate keys" }), notice), status);

  app.get("/peers", (c) => peersView(c, { allowedIps: `${gateway.nextAddress()}/32`, enabled: true }, {}, 200));

  /** Creates a peer from form fields; generates keys when no public key was given. */
  const createPeer = (raw: Record<string, unknown>, actor: string): PeerRow => {
    const s = requireStore();
    let clientPrivateKey: string | undefined;
    let presharedKey: string | undefined;
    const input = { ...raw, enabled: raw.enabled ?? "off" } as Record<string, unknown>;
    if (!String(raw.publicKey ?? "").trim()) {
      const k = generatePrivateKey();
      clientPrivateKey = encodeKey(k);
      input.publicKey = encodeKey(publicKeyOf(k));
      presharedKey = encodeKey(generatePrivateKey());
      input.presharedKey = presharedKey;
    }
    const parsed = parsePeerInput(input) as PeerInput;
    const row = s.peers.create({ ...parsed, clientPrivateKey }, actor);
    gateway.peersChanged();
    return row;
  };

  app.post("/peers", async (c) => {
    const form = await c.req.parseBody();
    try {
      const row = createPeer(form, principal(c).actor);
      return c.redirect(row.clientPrivateKey ? `/peers/${row.id}/config` : "/peers");
    } catch (err) {
      if (err instanceof PeerValidationError) return peersView(c, formValues(form), capFields(err.fields), 400);
      throw err;
    }
  });

  app.get("/peers/:id", (c) => {
    const p = requireStore().peers.get(c.req.param("id"));
    if (!p) return c.text("no such peer", 404);
    const values: v.PeerFormValues = { name: p.name, publicKey: p.publicKey, allowedIps: p.allowedIps, endpoint: p.endpoint ?? "", persistentKeepalive: String(p.persistentKeepalive),
      expiresAt: p.expiresAt ? new Date(p.expiresAt).toISOString().slice(0, 10) : "", enabled: p.enabled };
    return page(c, `Peer ${p.name}`, v.peerForm({ action: `/peers/${p.id}`, csrf: session(c)?.csrfToken ?? "", values, errors: {}, submit: "Save" }));
  });

  app.post("/peers/:id", async (c) => {
    const id = c.req.param("id");
    const form = await c.req.parseBody();
    try {
      const patch = parsePeerInput({ ...form, enabled: form.enabled ?? "off" });
      requireStore().peers.update(id, patch, principal(c).actor);
      gateway.peersChanged();
      return c.redirect("/peers");
    } catch (err) {
      if (err instanceof PeerValidationError) {
        return page(c, "Edit peer", v.peerForm({ action: `/peers/${id}`, csrf: session(c)?.csrfToken ?? "", values: formValues(form), errors: capFields(err.fields), submit: "Save" }), 400);
      }
      throw err;
    }
  });

  app.post("/peers/:id/delete", (c) => {
    requireStore().peers.delete(c.req.param("id"), principal(c).actor);
    gateway.peersChanged();
    return c.redirect("/peers");
  });

  const configFor = (c: Context<AdminEnv>) => {
    const p = requireStore().peers.get(c.req.param("id") ?? "");
    const text = p && gateway.clientConfig(p, new URL(c.req.url).hostname);
    return p && text ? { p, text } : undefined;
  };
  app.get("/peers/:id/config", async (c) => {
    const r = configFor(c);
    if (!r) return c.text("no client config for this peer (its keys were not generated here)", 404);
    const svg = await QRCode.toString(r.text, { type: "svg", errorCorrectionLevel: "M", margin: 1, width: 280 });
    return page(c, `Config ${r.p.name}`, v.clientConfigPage(r.p.name, r.text, svg));
  });
  app.get("/peers/:id/wg.conf", (c) => {
    const r = configFor(c);
    if (!r) return c.text("no client config for this peer", 404);
    return c.body(r.text, 200, { "content-type": "text/plain; charset=utf-8", "content-disposition": `attachment; filename="${r.p.name.replace(/[^A-Za-z0-9_-]/g, "_")}.conf"` });
  });

  // ── JSON API (same field names as logs) ──
  app.get("/api/connections", (c) => c.json({ connections: gateway.connections() }));
  app.get("/api/sessions", (c) => c.json({ sessions: gateway.connections().flatMap((x) => x.sessions.map((session) => ({ cid: x.cid, session, public_key: x.public_key }))) }));
  app.get("/api/logs", (c) => c.json({ logs: logs?.query(logQuery(c.req.query())) ?? [] }));
  app.get("/api/audit", (c) => {
    const q = c.req.query();
    const filter = auditFilter(q);
    const limit = intParam(q, "limit", { min: 1, max: 1000 }) ?? 50;
    const offset = intParam(q, "offset", { min: 0, max: 1_000_000_000 }) ?? 0;
    return c.json(store?.audit.query(filter, { limit, offset }) ?? { rows: [], total: 0 });
  });
  app.get("/api/peers", (c) => c.json({ peers: (store?.peers.list() ?? []).map(({ clientPrivateKey: _k, presharedKey, ...p }) => ({ ...p, presharedKey: presharedKey ? "(set)" : null })) }));
  app.post("/api/peers", async (c) => {
    const body = parseStrict(PEER_FIELDS, await jsonObject(c));
    try {
      const row = createPeer(body, principal(c).actor);
      return c.json({ id: row.id, public_key: row.publicKey }, 201);
    } catch (err) {
      if (err instanceof PeerValidationError) return c.json({ error: "invalid", fields: capFields(err.fields) }, 400);
      throw err;
    }
  });
  app.delete("/api/peers/:id", (c) => {
    const ok = requireStore().peers.delete(c.req.param("id"), principal(c).actor);
    if (ok) gateway.peersChanged();
    return ok ? c.body(null, 204) : c.json({ error: "not_found" }, 404);
  });
  // ── resources and authorizations ──
  /** Ids no API resource may take: every resource not from the store (the config file's). */
  const reservedIds = () => new Set((gateway.resources?.() ?? []).filter((r) => r.source !== "api").map((r) => r.id));
  /** Keys of peers outside the store (the config file's): the data plane holds every peer. */
  const otherPeers = () => new Set(gateway.connections().map((x) => x.public_key));
  const resourcesView = (c: Context<AdminEnv>, errors: Record<string, string>, values: Record<string, string>, status: 200 | 400 | 404 | 409 = 200) =>
    page(c, "Resources", v.resourcesPage(gateway.resources?.() ?? [], session(c)?.csrfToken ?? "", errors, values), status);
  /** A refused form change shows the page again with the message; anything else is a bug. */
  const refused = (c: Context<AdminEnv>, err: unknown, values: Record<string, string>) => {
    if (err instanceof ResourceError) return resourcesView(c, { form: capQuoted(err.message) }, values, RESOURCE_STATUS[err.kind]);
    throw err;
  };
  const formText = (f: Record<string, unknown>, name: string) => (typeof f[name] === "string" ? (f[name] as string) : "");

  app.get("/resources", (c) => resourcesView(c, {}, {}));
  app.post("/resources", async (c) => {
    const f = await c.req.parseBody();
    const values = Object.fromEntries(["id", "name", "type", "address", "filters"].map((k) => [k, formText(f, k)]));
    try {
      let filters;
      try {
        filters = parseFilterText(values.filters!);
      } catch (err) {
        throw new ResourceError("filters", (err as Error).message);
      }
      requireStore().resources.create({ type: values.type, id: values.id, name: values.name, address: values.address || undefined, filters }, principal(c).actor, reservedIds());
      gateway.resourcesChanged?.();
      return c.redirect("/resources");
    } catch (err) {
      return refused(c, err, values);
    }
  });
  app.post("/resources/:id/delete", (c) => {
    if (requireStore().resources.delete(c.req.param("id"), principal(c).actor)) gateway.resourcesChanged?.();
    return c.redirect("/resources");
  });
  app.post("/resources/:id/authorize", async (c) => {
    const f = await c.req.parseBody();
    try {
      const expiresAt = parseExpiresAt(formText(f, "expiresAt"), "expiresAt");
      requireStore().resources.authorize({ publicKey: formText(f, "publicKey"), resourceId: c.req.param("id"), expiresAt }, principal(c).actor, otherPeers());
      gateway.resourcesChanged?.();
      return c.redirect("/resources");
    } catch (err) {
      return refused(c, err, {});
    }
  });

  // Resources and authorizations (Firezone's shapes: resources {type,id,name,address,filters};
  // authorizations {public_key, resource_id, expires_at (Unix seconds or ISO, null = never)}).
  // A ResourceError from the store becomes 400/404/409 naming the field in onError.
  app.get("/api/resources", (c) => c.json({ resources: store?.resources.list() ?? [] }));
  app.post("/api/resources", async (c) => {
    const body = parseStrict(RESOURCE_FIELDS, await jsonObject(c));
    const r = requireStore().resources.create(body, principal(c).actor, reservedIds());
    gateway.resourcesChanged?.();
    return c.json({ id: r.id }, 201);
  });
  app.put("/api/resources/:id", async (c) => {
    const id = c.req.param("id");
    if (reservedIds().has(id)) throw new ResourceError("id", `${echo(id)} is a resource of the config file (read-only here)`, "conflict");
    const body = parseStrict(RESOURCE_FIELDS, await jsonObject(c));
    const r = requireStore().resources.update(id, { ...body, id: body.id ?? id }, principal(c).actor);
    gateway.resourcesChanged?.();
    return c.json({ id: r.id }, 200);
  });
  app.delete("/api/resources/:id", (c) => {
    const ok = requireStore().resources.delete(c.req.param("id"), principal(c).actor);
    if (ok) gateway.resourcesChanged?.();
    return ok ? c.body(null, 204) : c.json({ error: "not_found" }, 404);
  });
  app.get("/api/authorizations", (c) => c.json({ authorizations: (store?.resources.authorizations() ?? []).map((a) => ({ public_key: a.publicKey, resource_id: a.resourceId, expires_at: a.expiresAt === null ? null : Math.floor(a.expiresAt / 1000) })) }));
  app.post("/api/authorizations", async (c) => {
    const b = parseStrict(AUTHORIZATION_BODY, await jsonObject(c));
    const expiresAt = parseExpiresAt(b.expires_at);
    requireStore().resources.authorize({ publicKey: b.public_key, resourceId: b.resource_id, expiresAt }, principal(c).actor, otherPeers());
    gateway.resourcesChanged?.();
    return c.json({ ok: true }, 201);
  });
  app.delete("/api/authorizations", (c) => {
    const q = c.req.query();
    const ok = requireStore().resources.revoke(textParam(q, "public_key") ?? "", textParam(q, "resource_id") ?? "", principal(c).actor);
    if (ok) gateway.resourcesChanged?.();
    return ok ? c.body(null, 204) : c.json({ error: "not_found" }, 404);
  });

  app.get("/metrics", async (c) => c.text(await gateway.metrics(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }));

  app.notFound((c) => c.json({ error: "not_found", path: c.req.path.slice(0, ECHO_MAX) }, 404));
  // Bad input is the caller's 400 naming the field; anything else is our bug: logged in full,
  // answered with nothing a caller could learn the internals from.
  app.onError((err, c) => {
    if (err instanceof InputError) {
      const message = capQuoted(err.message);
      return wantsHtml(c) ? c.text(message, 400) : c.json({ error: "invalid", field: err.field, message }, 400);
    }
    if (err instanceof ResourceError) return c.json({ error: err.kind, field: err.field, message: capQuoted(err.message) }, RESOURCE_STATUS[err.kind]);
    if (err instanceof HTTPException) return err.getResponse();
    opts.log?.error("admin request failed", { method: c.req.method, path: c.req.path.slice(0, 200), err });
    return c.json({ error: "internal", message: "internal error (logged on the gateway)" }, 500);
  });
  return app;
}

