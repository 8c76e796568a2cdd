// Portal mode end to end with every real piece, in namespaces this test creates: the headless client
// (tools/headless-client, its own TUN) → the dev portal → `glassgate up --portal` → a resource
// server in its own namespace. Direct: curl works; the portal moving the flow's expiry ends it with
// a goodbye the client reports; a new flow is cut by reject_access the same way. Relayed: the
// gateway's WireGuard port is closed to the client, so ICE settles on the TURN relay (coturn,
// handed out by the portal) and curl still works.
//
//   client 10.9.0.2 ── 10.9.0.1 gateway + dev portal (+ coturn) 10.77.0.1 ── 10.77.0.5 resource
import { afterAll, describe, expect, test } from "bun:test";
import { skipReason } from "./support/netns.ts";
import { adminConnections, world as portalWorld } from "./support/portal-world.ts";

const SKIP = skipReason(["ip", "curl", "turnserver", "iptables"]);

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});
const world = (opts: { relay: boolean }) => portalWorld(opts, cleanups);

describe.skipIf(SKIP !== undefined)("portal mode end to end: headless client, dev portal, glassgate up --portal, resource", () => {
  if (SKIP) console.warn(`skipping portal client e2e: ${SKIP}`);

  test("direct: curl reaches the resource; a moved expiry and reject_access each cut access with a goodbye", async () => {
    const w = await world({ relay: false });
    const a = w.startClient();
    const connected = await a.out.next((l) => l.event === "connected", "connected", 30_000);
    expect(connected).toMatchObject({ gatewayId: "gw-1", relayed: false });
    await a.out.next((l) => l.event === "handshake_completed", "handshake");
    expect(w.curl()).toBe("hello from the resource\n");
    const conns = adminConnections(w);
    expect(conns).toHaveLength(1);
    expect(conns[0]!.portal).toMatchObject({ client_id: "client-1" });
    const cid = conns[0]!.cid;
    // The gateway's lines about this client carry its cid, the portal's client id and the resource.
    // Waited for, not looked up: the gateway's log line may reach us after the client's event.
    expect(await w.gateway.next((l) => l.msg === "authorization granted", "authorization granted")).toMatchObject({ cid, client_id: "client-1", rid: "res-lab", gid: expect.any(String) });
    expect(await w.gateway.next((l) => l.target === "tunnel" && l.msg === "handshake completed", "handshake completed")).toMatchObject({ cid, client_id: "client-1", gid: expect.any(String) });

    // The operator moves the flow's end 2 s ahead: access_authorization_expiry_updated, then the
    // node's sweep ends it and the gateway says goodbye.
    w.operator("/flows/expiry", "client=client-1&resource=res-lab&expires_in=2");
    await w.gateway.next((l) => l.msg === "authorization expired" && l.client_id === "client-1", "the expiry", 10_000);
    await w.gateway.next((l) => l.msg === "goodbye sent: no resources left" && l.cid === cid, "goodbye");
    await a.out.next((l) => l.event === "goodbye", "goodbye");
    expect(w.curl()).toBe("");
    a.proc.kill("SIGTERM");
    await a.proc.exited;

    // A new client asks again; then the operator revokes the policy: reject_access, goodbye.
    const b = w.startClient();
    await b.out.next((l) => l.event === "handshake_completed", "handshake", 30_000);
    expect(w.curl()).toBe("hello from the resource\n");
    w.operator("/policies/revoke", "client=client-1&resource=res-lab");
    await w.gateway.next((l) => l.msg === "authorization revoked by the portal", "reject_access");
    await b.out.next((l) => l.event === "goodbye", "goodbye");
    expect(w.curl()).toBe("");
  }, 120_000);

  test("relayed: with the direct path closed, ICE goes through the portal's TURN relay and curl still works", async () => {
    const w = await world({ relay: true });
    const c = w.startClient();
    const connected = await c.out.next((l) => l.event === "connected", "connected", 40_000);
    // Either end's relay candidate may win: the client's own allocation (relayed: true) or the
    // gateway's, reached from the client's host candidate. Both cross coturn; neither is direct.
    expect(connected).toMatchObject({ gatewayId: "gw-1", pair: expect.stringContaining("relay") });
    await c.out.next((l) => l.event === "handshake_completed", "handshake", 20_000);
    expect(w.curl()).toBe("hello from the resource\n");
    expect(adminConnections(w)[0]?.path).toMatch(/^relay /);
    expect(w.gateway.lines.some((l) => l.msg === "relays changed" || (l.msg === "portal init applied" && l.relays === 1))).toBe(true);
  }, 120_000);
});
