// Named problems with real wireguard-go clients, each misconfigured the way users get it wrong:
// a wrong preshared key, the wrong gateway public key, a key the gateway does not know, packets
// from an address outside AllowedIPs, a peer that never connects, an Endpoint nobody answers at,
// and a stored peer with a taken tunnel address. Each must show in GET /api/problems (with its
// cause and fix), as a banner on its connection page, and as exactly one Sentry event linking to
// that page through GLASSGATE_PUBLIC_ADMIN_URL (Sentry: a local receiver in the gateway's namespace).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeKey, keyToU256Decimal, publicKeyOf } from "../src/crypto/x25519.ts";
import type { ProblemView } from "../src/telemetry/problems.ts";
import { startMisconfigured } from "./support/misconfigured.ts";
import { skipReason, waitFor } from "./support/netns.ts";
import { CLIENT_PORT, type Client, type Topology } from "./support/topology.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping named problem tests: ${skip}`);

const PUBLIC_ADMIN = "https://gw.example.test/admin";
const SENTRY_PORT = 9898;

describe.skipIf(skip !== undefined)("named problems with misconfigured wireguard-go clients", () => {
  let topo: Topology;
  let events = "";
  let psk: Client, wrongKey: Client, outside: Client, never: Client, silent: Client, unknown: Client;
  let squatterKey = "";

  const problems = (): ProblemView[] => JSON.parse(topo.api("/api/problems").body).problems;
  const cidOf = (c: Client) => topo.connections().find((x) => x.public_key === c.publicKey)!.cid;
  const sentryEvents = () =>
    readFileSync(events, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { fingerprint: string[]; tags: Record<string, string>; contexts: Record<string, Record<string, unknown>> });

  beforeAll(async () => {
    const m = await startMisconfigured({ SENTRY_DSN: `http://abc123@127.0.0.1:${SENTRY_PORT}/4242`, GLASSGATE_PUBLIC_ADMIN_URL: PUBLIC_ADMIN }, (t) => {
      // A Sentry ingest stand-in where the gateway can reach it: its own namespace's loopback.
      events = join(t.dir, "sentry-events.jsonl");
      writeFileSync(events, "");
      t.gw.start(["bun", "-e", `
      const fs = require("node:fs");
      Bun.serve({ hostname: "127.0.0.1", port: ${SENTRY_PORT}, async fetch(req) {
        const lines = (await req.text()).split("\\n").filter(Boolean);
        for (let i = 1; i + 1 < lines.length; i += 2) if (JSON.parse(lines[i]).type === "event") fs.appendFileSync(${JSON.stringify(events)}, lines[i + 1] + "\\n");
        return Response.json({});
      } });`]);
    });
    ({ topo, psk, wrongKey, outside, never, silent, unknown, squatterKey } = m);
  }, 60_000);

  afterAll(async () => {
    if (process.env.GG_DEBUG_LOG) console.log(topo?.gatewayLog);
    await topo?.destroy();
  });

  test("each misconfiguration is named in GET /api/problems with its likely cause and the fix to try", async () => {
    const want = (list: ProblemView[]) => {
      const has = (kind: string, where: (p: ProblemView) => boolean) => list.some((p) => p.kind === kind && where(p));
      return has("psk_mismatch", (p) => p.public_key === psk.publicKey) &&
        has("wrong_gateway_key", (p) => p.source === wrongKey.underlayIp) &&
        has("unknown_key", (p) => p.source === unknown.underlayIp && p.public_key === unknown.publicKey) &&
        has("allowed_ips", (p) => p.public_key === outside.publicKey) &&
        has("never_connected", (p) => p.public_key === never.publicKey) &&
        has("endpoint_unreachable", (p) => p.public_key === silent.publicKey) &&
        has("duplicate_address", (p) => p.public_key === squatterKey);
    };
    const list = await waitFor("every named problem", () => { const l = problems(); return want(l) && l; }, 45_000, 500).catch((err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(problems(), null, 1)}`);
    });
    const one = (kind: string) => list.find((p) => p.kind === kind)!;
    expect(one("psk_mismatch")).toMatchObject({ cid: cidOf(psk), source: expect.stringContaining(psk.underlayIp) });
    expect(one("psk_mismatch").count).toBeGreaterThanOrEqual(3);
    expect(one("psk_mismatch").likely_cause).toContain("PresharedKey");
    expect(one("wrong_gateway_key")).toMatchObject({ cid: null });
    expect(one("wrong_gateway_key").fix).toContain(encodeKey(publicKeyOf(topo.gwKey)));
    expect(one("allowed_ips")).toMatchObject({ cid: cidOf(outside), source: `10.99.${topo.net}.77` });
    expect(one("allowed_ips").likely_cause).toContain(`${outside.tunnelIp}/32`);
    expect(one("endpoint_unreachable")).toMatchObject({ cid: cidOf(silent), source: `${silent.underlayIp}:${CLIENT_PORT}` });
    expect(one("duplicate_address")).toMatchObject({ source: `${psk.tunnelIp}/32` });
    // Named at warn with the cid, once.
    const warns = topo.gatewayLog.split("\n").filter((l) => l.includes('"target":"problems"') && l.includes('"kind":"psk_mismatch"'));
    expect(warns).toHaveLength(1);
    expect(JSON.parse(warns[0]!)).toMatchObject({ level: "warn", cid: cidOf(psk) });
  }, 60_000);

  test("the wrong preshared key leaves the connection awaiting confirmation and never audited as established", () => {
    const conn = (JSON.parse(topo.api("/api/connections").body).connections as { public_key: string; state: string; state_since: string }[]).find((c) => c.public_key === psk.publicKey)!;
    expect(conn.state).toBe("awaiting_confirmation");
    expect(Date.parse(conn.state_since)).toBeGreaterThan(0);
    const audit = JSON.parse(topo.api(`/api/audit?action=connection.established&cid=${cidOf(psk)}`).body) as { rows: unknown[] };
    expect(audit.rows).toHaveLength(0);
    expect(topo.gatewayLog.split("\n").some((l) => l.includes('"msg":"handshake completed"') && l.includes(`"cid":${cidOf(psk)}`))).toBe(false);
  });

  test("the connection page shows each connection's problem as a banner", () => {
    for (const [c, kind] of [[psk, "psk_mismatch"], [outside, "allowed_ips"], [never, "never_connected"], [silent, "endpoint_unreachable"]] as const) {
      const page = topo.api(`/connections/${cidOf(c)}`).body;
      expect(page).toContain(`data-problem="${kind}"`);
      expect(page).toContain("Likely cause:");
    }
  });

  test("Sentry receives one event per problem and peer, grouped by kind and key, linking to the connection", async () => {
    const kinds = ["psk_mismatch", "wrong_gateway_key", "unknown_key", "allowed_ips", "never_connected", "endpoint_unreachable", "duplicate_address"];
    await waitFor("Sentry events", () => kinds.every((k) => sentryEvents().some((e) => e.tags.problem === k)), 15_000, 200).catch((err) => {
      throw new Error(`${(err as Error).message}: got ${JSON.stringify(sentryEvents().map((e) => e.tags.problem))}`);
    });
    const evs = sentryEvents();
    const pskEvents = evs.filter((e) => e.tags.problem === "psk_mismatch");
    expect(pskEvents).toHaveLength(1);
    const u256 = keyToU256Decimal(Buffer.from(psk.publicKey, "base64"));
    expect(pskEvents[0]!.fingerprint).toEqual(["psk_mismatch", u256]);
    expect(pskEvents[0]!.tags).toMatchObject({ cid: String(cidOf(psk)), public_key: u256 });
    expect(pskEvents[0]!.tags.gid).toBeTruthy();
    expect(pskEvents[0]!.contexts.connection!.admin).toBe(`${PUBLIC_ADMIN}/connections/${cidOf(psk)}`);
    // One per (problem, peer): never a flood per packet or per retry.
    const keys = evs.map((e) => e.fingerprint.join("|"));
    expect(new Set(keys).size).toBe(keys.length);
  }, 30_000);
});
