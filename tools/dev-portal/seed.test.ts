import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { DevPortal, type Conn } from "./portal.ts";
import { loadSeed, parseSeed } from "./seed.ts";

const base = {
  gateways: [{ id: "gw-1", name: "edge", token: "gateway-token-1" }],
  clients: [{ id: "c-1", name: "laptop", token: "client-token-1" }],
  resources: [{ type: "cidr", id: "r-1", name: "lab", address: "10.0.0.0/24" }],
  policies: [{ client: "c-1", resource: "r-1" }],
};

describe("seed", () => {
  test("the example TOML seed loads", () => {
    const s = loadSeed(join(import.meta.dir, "example.toml"));
    expect(s.gateways[0]).toMatchObject({ id: "gw-1", site: "site-1" });
    expect(s.resources.map((r) => r.id)).toEqual(["res-lab", "res-app"]);
  });

  test("errors name the field: a bad resource, an unknown reference, a shared token, a duplicate id", () => {
    expect(() => parseSeed({ ...base, resources: [{ type: "cidr", id: "r-1", address: "10.0.0.300/8" }] })).toThrow(/^seed: resources\.0: resource address/);
    expect(() => parseSeed({ ...base, policies: [{ client: "nobody", resource: "r-1" }] })).toThrow(/policies\.0\.client: no client "nobody"/);
    expect(() => parseSeed({ ...base, clients: [{ id: "c-1", name: "x", token: "gateway-token-1" }] })).toThrow(/tokens\.1: "gateway-token-1" appears twice/);
    expect(() => parseSeed({ ...base, gateways: [...base.gateways, { id: "gw-1", name: "again", token: "another-token" }] })).toThrow(/gateways\.1: "gw-1" appears twice/);
    expect(() => parseSeed({ ...base, gateways: [] })).toThrow(/gateways/);
  });
});

describe("dev portal without sockets", () => {
  const conn = (into: string[]): Conn => ({ send: (t) => void into.push(t), close() {} });
  const frames = (into: string[]) => into.map((t) => JSON.parse(t) as { topic: string; event: string; payload: Record<string, unknown>; ref: unknown });
  const KEY = "uMBCkAxTewfSgypIyxdQ18uCi84HLtKmQJy0wvQrYWY=";

  test("a flow is refused for an unknown resource, without a policy, and with no gateway joined", () => {
    const p = new DevPortal(parseSeed({ ...base, resources: [...base.resources, { type: "cidr", id: "r-2", address: "10.1.0.0/24" }] }));
    const out: string[] = [];
    const c = p.attach("client", "c-1", conn(out), { externalId: "e", name: "n", publicKey: KEY, userAgent: "" });
    p.handleFrame(c, JSON.stringify({ topic: "client", event: "phx_join", payload: null, ref: 0 }));
    for (const resource_id of ["nope", "r-2", "r-1"]) p.handleFrame(c, JSON.stringify({ topic: "client", event: "create_flow", payload: { resource_id, connected_gateway_ids: [] }, ref: 1 }));
    expect(frames(out).filter((f) => f.event === "flow_creation_failed").map((f) => f.payload.reason)).toEqual(["not_found", "forbidden", "offline"]);
  });

  test("pushes before a join, and joins on the other side's topic, get 'unmatched topic'", () => {
    const p = new DevPortal(parseSeed(base));
    const out: string[] = [];
    const g = p.attach("gateway", "gw-1", conn(out), { externalId: "e", name: "n", publicKey: KEY, userAgent: "" });
    p.handleFrame(g, JSON.stringify({ topic: "gateway", event: "flow_authorized", payload: { ref: "x" }, ref: 0 }));
    p.handleFrame(g, JSON.stringify({ topic: "client", event: "phx_join", payload: null, ref: 1 }));
    expect(frames(out).map((f) => [f.event, f.ref, (f.payload.response as { reason?: string }).reason])).toEqual([
      ["phx_reply", 0, "unmatched topic"],
      ["phx_reply", 1, "unmatched topic"],
    ]);
  });

  test("garbage from a device is counted on its session", () => {
    const p = new DevPortal(parseSeed(base));
    const g = p.attach("gateway", "gw-1", conn([]), { externalId: "e", name: "n", publicKey: KEY, userAgent: "" });
    p.handleFrame(g, "[1,2");
    expect(g.malformed).toBe(1);
    expect(p.records.at(-1)).toMatchObject({ dir: "in", event: "(malformed)" });
  });
});
