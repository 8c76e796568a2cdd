// The gateway's host routes in its own namespace: a veth with a connected /24 (the LAN side of
// the standard topology), peers whose AllowedIPs would take it (or the default route) over, and
// peers added, disabled and deleted through the admin API.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { ADMIN_TOKEN, Topology } from "./support/topology.ts";
import { skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip"]);
const newKey = () => encodeKey(publicKeyOf(generatePrivateKey()));

describe.skipIf(skip !== undefined)("host routes for peer AllowedIPs", () => {
  let topo: Topology;
  let tun: string;
  let hostRoutesBefore: string[];
  const lanKey = newKey();
  const wideKey = newKey();
  const splitKey = newKey();
  const fineKey = newKey();

  /** The namespace's main table, one `ip route` line each (IPv4 and IPv6). */
  const table = () => [...topo.gw.exec(["ip", "route", "show", "table", "main"]).split("\n"), ...topo.gw.exec(["ip", "-6", "route", "show", "table", "main"]).split("\n")]
    .map((l) => l.trim()).filter(Boolean);
  const viaOthers = () => table().filter((l) => !l.includes(`dev ${tun}`)).sort();
  const viaTun = () => table().filter((l) => l.includes(`dev ${tun}`) && !l.startsWith("fe80::")).map((l) => l.split(" ")[0]!).sort();

  function request(method: string, path: string, body?: unknown, form = false): { status: number; body: string } {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": form ? "application/x-www-form-urlencoded" : "application/json" };
    const payload = body === undefined ? undefined : form ? new URLSearchParams(body as Record<string, string>).toString() : JSON.stringify(body);
    const script = `const r = await fetch("http://127.0.0.1:8080${path}", { method: ${JSON.stringify(method)}, redirect: "manual", headers: ${JSON.stringify(headers)}, body: ${JSON.stringify(payload ?? null)} });` +
      `process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() }));`;
    return JSON.parse(topo.gw.exec(["bun", "-e", script]));
  }

  beforeAll(async () => {
    const tag = uniqueTag();
    topo = new Topology(tag, 0);
    tun = `ggt${tag}`;
    hostRoutesBefore = table().sort();
    const lan = `10.202.${topo.net}`;
    await topo.startGateway({}, 0, {
      sections: [
        // Exactly the gateway's LAN, and a /16 covering it.
        "[Peer]", `PublicKey = ${lanKey}`, `AllowedIPs = ${lan}.0/24`, "",
        "[Peer]", `PublicKey = ${wideKey}`, "AllowedIPs = 10.202.0.0/16", "",
        // The full-tunnel split that overrides a default route without replacing it.
        "[Peer]", `PublicKey = ${splitKey}`, "AllowedIPs = 0.0.0.0/1, 128.0.0.0/1", "",
        "[Peer]", `PublicKey = ${fineKey}`, "AllowedIPs = 10.77.0.0/24", "",
      ].join("\n"),
    });
  }, 60_000);
  afterAll(() => topo?.destroy());

  test("prefixes that cover the host's connected /24 or split the default route are refused; the host's table is unchanged", () => {
    expect(viaOthers()).toEqual(hostRoutesBefore);
    expect(viaTun()).toEqual(["10.77.0.0/24", `10.99.${topo.net}.0/24`]);
    const refused = topo.gatewayLog.split("\n").filter((l) => l.includes("peer route refused")).map((l) => JSON.parse(l));
    expect(refused.map((r) => [r.level, r.public_key, r.allowed_ips]).sort()).toEqual([
      ["error", lanKey, `10.202.${topo.net}.0/24`],
      ["error", splitKey, "0.0.0.0/1"],
      ["error", splitKey, "128.0.0.0/1"],
      ["error", wideKey, "10.202.0.0/16"],
    ].sort());
    for (const r of refused) {
      expect(typeof r.cid).toBe("number");
      expect(r.reason.length).toBeGreaterThan(0);
    }
    expect(refused.find((r) => r.public_key === lanKey).conflict).toBe(`10.202.${topo.net}.0/24 dev gl${topo.tag}`);
    // Refused routes, not refused peers: all four are in the data plane.
    const listed = JSON.parse(topo.api("/api/peers").body).peers as { source: string; publicKey: string }[];
    expect(listed.filter((p) => p.source === "store")).toEqual([]);
    expect(listed.map((p) => p.publicKey).sort()).toEqual([lanKey, wideKey, splitKey, fineKey].sort());
    expect(topo.connections().map((c) => c.public_key).sort()).toEqual([lanKey, wideKey, splitKey, fineKey].sort());
  });

  test("a disabled peer gets no route; enabling routes it, disabling takes the route away again", async () => {
    const created = request("POST", "/api/peers", { name: "branch", publicKey: newKey(), allowedIps: "10.78.0.0/24", enabled: false });
    expect(created.status).toBe(201);
    const { id } = JSON.parse(created.body);
    expect(viaTun()).not.toContain("10.78.0.0/24");
    const fields = { name: "branch", publicKey: JSON.parse(created.body).public_key, allowedIps: "10.78.0.0/24", persistentKeepalive: "0" };
    expect(request("POST", `/peers/${id}`, { ...fields, enabled: "on" }, true).status).toBe(302);
    await waitFor("the enabled peer's route", () => viaTun().includes("10.78.0.0/24"));
    expect(request("POST", `/peers/${id}`, fields, true).status).toBe(302); // unchecked box: disabled
    await waitFor("the disabled peer's route to go", () => !viaTun().includes("10.78.0.0/24"));
    expect(viaOthers()).toEqual(hostRoutesBefore);
  });

  test("deleting a peer through the admin API removes its route", async () => {
    const created = request("POST", "/api/peers", { name: "office", publicKey: newKey(), allowedIps: "10.79.0.0/24", enabled: true });
    expect(created.status).toBe(201);
    await waitFor("the new peer's route", () => viaTun().includes("10.79.0.0/24"));
    expect(request("DELETE", `/api/peers/${JSON.parse(created.body).id}`).status).toBe(204);
    await waitFor("the deleted peer's route to go", () => !viaTun().includes("10.79.0.0/24"));
    expect(viaTun()).toEqual(["10.77.0.0/24", `10.99.${topo.net}.0/24`]);
    await waitFor("the removal to be logged", () => topo.gatewayLog.includes('"msg":"route removed: no peer needs it","allowed_ips":"10.79.0.0/24"'));
  });
});
