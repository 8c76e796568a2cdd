// Helpers for the admin server's unit tests: an app in-process (app.request) with a real store on
// disk, a stub gateway and a fake clock, and a browser-like login (CSRF cookie + token, Origin).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "bun:test";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { Store, type PeerRow } from "../src/store/index.ts";
import { LogRing } from "../src/telemetry/log-ring.ts";
import { Logger, parseLogFilter } from "../src/telemetry/log.ts";
import type { ConnectionView } from "../src/telemetry/view.ts";
import { createAdminApp, type AdminGateway } from "./app.ts";
import type { AdminOptions } from "./types.ts";

export const ENV_TOKEN = "env-token-xyz";

/** `extra`: more admin options (cluster mode's `cluster`, `peers`, …), or a function of the store giving them. */
export function setup(override: Partial<AdminGateway> = {}, extra: Partial<AdminOptions> | ((store: Store) => Partial<AdminOptions>) = {}) {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-admin-")));
  const logs = new LogRing(100);
  const log = new Logger(parseLogFilter("trace"), logs.sink);
  let applied = 0;
  let resourcesApplied = 0;
  const conns: ConnectionView[] = [{
    cid: 3428714, public_key: encodeKey(publicKeyOf(generatePrivateKey())), endpoint: "192.0.2.7:51820", sessions: ["3428714|1"],
    last_handshake: new Date().toISOString(), rx_bytes: 2048, tx_bytes: 1024, rx_packets: 4, tx_packets: 2,
    handshakes: { initiated: 0, completed: 1, failed: 0, confirmed: 1 }, allowed_ips: ["10.99.0.2/32"], drops: { replay: 2 }, state: "connected",
    state_since: new Date().toISOString(),
  }];
  const gateway: AdminGateway = {
    connections: () => conns,
    problems: () => [],
    metrics: () => "glassgate_connections 1\n",
    peersChanged: () => void applied++,
    resourcesChanged: () => void resourcesApplied++,
    nextAddress: () => "10.99.0.9",
    clientConfig: (p: PeerRow) => (p.clientPrivateKey ? `[Interface]\nPrivateKey = ${p.clientPrivateKey}\n` : undefined),
    resources: () => store.resources.list().map((r) => ({ id: r.id, name: r.name, type: r.type, address: "", filters: "", source: "api" as const, authorizations: [{ cid: 3428714, expires_at: null }] })),
    ...override,
  };
  const clock = { now: Date.parse("2026-11-29T10:00:00Z") };
  const app = createAdminApp({ gateway, store, logs, envToken: ENV_TOKEN, clock: () => clock.now, log: log.target("admin"), ...(typeof extra === "function" ? extra(store) : extra) });
  return { app, store, logs, log, conns, clock, applied: () => applied, resourcesApplied: () => resourcesApplied };
}

export type App = ReturnType<typeof setup>["app"];
export const BASE = "http://localhost";

/** What a browser has after GET /login: the login CSRF cookie and the form's hidden token. */
export async function loginForm(app: App, base = BASE): Promise<{ cookie: string; csrf: string }> {
  const r = await app.request(`${base}/login`);
  const cookie = r.headers.getSetCookie().find((c) => c.startsWith("gg_login_csrf="))!.split(";")[0]!;
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await r.text())![1]!;
  return { cookie, csrf };
}

/** POST /login as a browser on `base` would: same-origin Origin, the form's CSRF token and cookie. */
export async function postLogin(app: App, fields: Record<string, string>, opts: { cookie?: string; base?: string; form?: { cookie: string; csrf: string }; headers?: Record<string, string> } = {}) {
  const base = opts.base ?? BASE;
  const form = opts.form ?? (await loginForm(app, base));
  const cookie = [form.cookie, opts.cookie].filter(Boolean).join("; ");
  return app.request(`${base}/login`, { method: "POST", headers: { origin: base, cookie, ...opts.headers }, body: new URLSearchParams({ _csrf: form.csrf, ...fields }) });
}

export async function login(app: App, store: Store): Promise<{ cookie: string; csrf: string }> {
  if (store.auth.userCount() === 0) await store.auth.createUser("alice", "correct horse", "test");
  const r = await postLogin(app, { username: "alice", password: "correct horse" });
  expect(r.status).toBe(302);
  const setCookie = r.headers.get("set-cookie")!;
  expect(setCookie).toContain("HttpOnly");
  expect(setCookie).toContain("SameSite=Strict");
  const cookie = setCookie.split(";")[0]!;
  const html = await (await app.request("/peers", { headers: { cookie } })).text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
  return { cookie, csrf };
}

/** A relay as portal mode shows it (GatewayNode.relayViews): one allocation, one bound channel. */
export const RELAY: import("../src/node/relays.ts").RelayView = {
  id: "relay-eu-1", servers: ["203.0.113.50:3478"], server: "203.0.113.50:3478", state: "allocated", relayed: ["203.0.113.50:50012"], srflx: "198.51.100.1:51820",
  expires_in_s: 540, credentials_expire_in_s: 86000, channels: [{ number: 0x4001, peer: "192.0.2.44:40000", bound: true, sent_bytes: 123456, received_bytes: 654321 }],
  relayed_bytes: { sent: 123456, received: 654321 }, failures: { auth: 1 },
};
