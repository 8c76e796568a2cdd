// A restart keeps a peer's history reachable from an old cid: a wireguard-go client connects,
// the gateway restarts (new cids), and the old cid's page leads to the peer's history, its
// connection now and its earlier log lines; the audit filter by peer shows its whole trail.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { type Browser } from "playwright-core";
import { CHROMIUM, launchChromiumIn, screenshot, watchPage } from "./support/browser.ts";
import { encodeKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { filePeerId } from "../src/store/index.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { ADMIN_TOKEN, CLIENT_PORT, Topology, type Client } from "./support/topology.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping peer-history test: ${skip}`);

function ping(c: Client, target: string): boolean {
  return sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "1", "-W", "2", target], { allowFail: true }).includes("1 received");
}

describe.skipIf(skip !== undefined)("peer history across a gateway restart", () => {
  let topo: Topology;
  let client: Client;

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    client = topo.clients[0]!;
    await topo.configureClient(client);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test("an old cid leads to the peer's history, its connection now and its earlier logs", async () => {
    const id = filePeerId(client.publicKey);
    await topo.startGateway();
    await waitFor("the client to connect", () => ping(client, topo.gwTunnelIp), 15_000, 200);
    const oldCid = topo.connections()[0]!.cid;
    // Connection lines of the first run, as the API shows them now.
    await waitFor("the handshake line", () => topo.gatewayLog.includes(`"msg":"handshake completed","cid":${oldCid}`));
    expect((await topo.stopGateway()).code).toBe(0);

    // A fresh session for the client (the old one died with the gateway's keys).
    const gwKey = encodeKey(publicKeyOf(topo.gwKey));
    client.ns.exec(["wg", "set", client.wgIf, "peer", gwKey, "remove"]);
    client.ns.exec(["wg", "set", client.wgIf, "listen-port", String(CLIENT_PORT), "peer", gwKey, "endpoint", `${topo.gwUnderlayFor(client)}:52625`, "allowed-ips", `10.99.${topo.net}.0/24`]);
    await topo.startGateway();
    await waitFor("the client to connect again", () => ping(client, topo.gwTunnelIp), 15_000, 200);
    const newCid = topo.connections()[0]!.cid;
    // Named by its stable id wherever connections are listed.
    expect(JSON.parse(topo.api("/api/connections").body).connections[0]).toMatchObject({ cid: newCid, peer_id: id, peer_name: null });
    expect(newCid).not.toBe(oldCid);

    // The old cid's page: the peer's history, with its connection now.
    const page = topo.api(`/connections/${oldCid}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain(`data-testid="peer-id">${id}`);
    expect(page.body).toContain('data-testid="old-cid"');
    expect(page.body).toContain(`href="/connections/${newCid}" data-testid="current-connection"`);
    expect(page.body).toContain("handshake completed"); // the first run's line, from the store
    // The API says the same, and the first run's lines are in Logs by cid.
    const hist = JSON.parse(topo.api(`/api/connections/${oldCid}/history`).body);
    expect(hist.peer.id).toBe(id);
    expect(hist.current.cid).toBe(newCid);
    expect(hist.connections.map((c: { cid: number }) => c.cid)).toEqual([newCid, oldCid]);
    const oldLogs = JSON.parse(topo.api(`/api/logs?cid=${oldCid}`).body).logs as { msg: string; cid: number }[];
    expect(oldLogs.map((l) => l.msg)).toContain("handshake completed");
    expect(oldLogs.every((l) => l.cid === oldCid)).toBe(true);

    // One filter, the whole trail: both runs' connection rows, the shutdown's close included.
    const audit = JSON.parse(topo.api(`/api/audit?peer=${id}`).body) as { rows: { action: string; cid: number; reason: string | null }[] };
    expect(audit.rows.map((r) => `${r.action}:${r.cid}`)).toEqual([`connection.established:${newCid}`, `connection.closed:${oldCid}`, `connection.established:${oldCid}`]);

    // In a browser: the page renders under the admin's CSP (no inline script or style).
    if (existsSync(CHROMIUM)) {
      const browser: Browser = await launchChromiumIn(topo.gw.name, topo.dir);
      try {
        const p = await browser.newPage({ viewport: { width: 1300, height: 900 }, extraHTTPHeaders: { authorization: `Bearer ${ADMIN_TOKEN}` } });
        const csp: string[] = [];
        watchPage(p, csp);
        await p.goto(`http://127.0.0.1:8080/connections/${oldCid}`);
        await p.getByTestId("current-connection").click();
        expect(new URL(p.url()).pathname).toBe(`/connections/${newCid}`);
        await p.getByTestId("history-link").click();
        expect(new URL(p.url()).pathname).toBe(`/history/${id}`);
        await p.goto(`http://127.0.0.1:8080/connections/${oldCid}`);
        await screenshot(p, "peer-history.png");
        expect(csp).toEqual([]);
      } finally {
        await browser.close();
      }
    }
  }, 120_000);
});
