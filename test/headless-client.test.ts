// The headless client end to end in namespaces the test creates: tools/headless-client (a real
// process with its TUN) → the dev portal (tools/dev-portal, real WebSockets) → a gateway →
// a resource server (Bun HTTP) in its own namespace; curl on the client reaches it, and the
// portal's reject_access cuts it off with a goodbye the client reports.
// Gateways: `glassgate up --portal` (the product), and test/support/headless-gateway.ts (GatewayNode
// + a controlled IceAgent over the portal's gateway topic: the double the client was first built
// against). Paths: direct, and relayed through coturn when UDP between the two hosts is blocked.
import { afterAll, describe, expect, test } from "bun:test";
import { skipReason } from "./support/netns.ts";
import type { Watched } from "./support/process-lines.ts";
import { world as portalWorld, type World, type WorldOptions } from "./support/portal-world.ts";

const SKIP = skipReason(["ip", "curl", "iptables"]);
const NO_COTURN = skipReason(["turnserver"]);

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

type ClientWorld = World & { client: Watched };

/** The portal world (test/support/portal-world.ts) with one headless client started in it. */
async function world(opts: WorldOptions): Promise<ClientWorld> {
  const w = await portalWorld(opts, cleanups);
  return { ...w, client: w.startClient().out };
}

/** Until the client is connected and its handshake done; what each side said if it never is. */
async function connected(w: ClientWorld) {
  try {
    const c = await w.client.next((l) => l.event === "connected", "connected", 30_000);
    const h = await w.client.next((l) => l.event === "handshake_completed", "handshake");
    console.log(`connected over ${String(c.pair)} ${c.ms} ms after flow_created, WireGuard up at ${h.ms} ms`);
    return c;
  } catch (err) {
    throw new Error(`${String(err)}\n${w.diagnose(w.client)}`);
  }
}

async function reaches(w: ClientWorld) {
  const body = w.curl();
  if (body !== "hello from the resource\n") console.error(w.diagnose(w.client));
  expect(body).toBe("hello from the resource\n");
}

describe.skipIf(SKIP !== undefined)("headless client end to end (dev portal, gateway, resource)", () => {
  if (SKIP) console.warn(`skipping headless client e2e: ${SKIP}`);

  test("glassgate up --portal, direct: curl reaches the resource; reject_access ends it with a goodbye", async () => {
    const w = await world({ gateway: "glassgate", relay: false });
    const c = await connected(w);
    expect(c).toMatchObject({ gatewayId: "gw-1", relayed: false });
    expect(String(c.pair)).toMatch(/^host 10\.9\.0\.2:\d+ -> host 10\.9\.0\.1:52625$/);
    await reaches(w);
    w.operator("/policies/revoke", "client=client-1&resource=res-lab");
    await w.client.next((l) => l.event === "goodbye", "goodbye");
    expect(w.curl()).toBe("");
  }, 90_000);

  test.skipIf(NO_COTURN !== undefined)("glassgate up --portal, relayed through coturn: curl reaches the resource; the authorization expiring ends it with a goodbye", async () => {
    const w = await world({ gateway: "glassgate", relay: true, onlyClientRelay: true });
    const c = await connected(w);
    expect(c).toMatchObject({ gatewayId: "gw-1", relayed: true });
    expect(String(c.pair)).toMatch(/^relay 10\.9\.0\.1:49\d{3} -> /);
    await reaches(w);
    // The operator moves the flow's expiry 2 s ahead: access_authorization_expiry_updated.
    w.operator("/flows/expiry", "client=client-1&resource=res-lab&expires_in=2");
    await w.client.next((l) => l.event === "goodbye", "goodbye", 15_000);
    expect(w.curl()).toBe("");
  }, 90_000);

  test("the gateway double (GatewayNode + controlled ICE), direct: curl works; reject_access ends it with a goodbye", async () => {
    const w = await world({ gateway: "double", relay: false });
    const c = await connected(w);
    expect(c).toMatchObject({ gatewayId: "gw-1", relayed: false });
    await w.gateway.next((l) => l.kind === "nominated", "nominated");
    await reaches(w);
    w.operator("/policies/revoke", "client=client-1&resource=res-lab");
    await w.gateway.next((l) => l.kind === "goodbye_sent", "goodbye_sent");
    await w.client.next((l) => l.event === "goodbye", "goodbye");
    expect(w.curl()).toBe("");
  }, 90_000);
});
