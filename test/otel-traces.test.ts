// A real gateway exporting traces: a wireguard-go client's handshake, an admin request and the
// log lines written inside them, received by an OTLP/HTTP receiver in the gateway's namespace.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SERVICE_VERSION } from "../src/telemetry/otel.ts";
import { Topology } from "./support/topology.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping OTLP trace export test: ${skip}`);

type OtlpAttr = { key: string; value: { stringValue?: string; intValue?: string | number } };
interface OtlpSpan { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes: OtlpAttr[]; status?: { code?: number } }
interface OtlpTraces { resourceSpans: { resource: { attributes: OtlpAttr[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] }
const attr = (attrs: OtlpAttr[], key: string) => {
  const v = attrs.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : undefined);
};

describe.skipIf(skip !== undefined)("a live gateway exports traces over OTLP/HTTP", () => {
  let topo: Topology;
  let received: string;

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    await topo.configureClient(topo.clients[0]!);
    received = join(topo.dir, "otlp.jsonl");
    // The receiver lives in the gateway's namespace, on its loopback: one decoded request per line.
    const rx = topo.gw.start(["bun", "-e", `
      import { appendFileSync } from "node:fs";
      Bun.serve({ hostname: "127.0.0.1", port: 4318, async fetch(req) {
        if (new URL(req.url).pathname === "/v1/traces") appendFileSync(${JSON.stringify(received)}, JSON.stringify({ type: req.headers.get("content-type"), body: await req.json() }) + "\\n");
        return Response.json({});
      } });
      console.log("listening");`]);
    const first = await rx.stdout.getReader().read();
    expect(new TextDecoder().decode(first.value)).toContain("listening");
    await topo.startGateway({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:4318/v1/traces" });
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test("the client's handshake, an admin request and their log lines arrive as spans of one gateway (service.instance.id = gid)", async () => {
    const c = topo.clients[0]!;
    expect(sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "2", "-i", "0.2", "-W", "2", topo.gwTunnelIp], { allowFail: true })).toContain("2 received");
    const conn = topo.connections().find((x) => x.public_key === c.publicKey)!;
    expect(topo.api("/api/peers/does-not-exist", null).status).toBe(401);
    // SIGTERM: the gateway flushes its spans before it exits.
    expect((await topo.stopGateway()).code).toBe(0);
    await waitFor("the OTLP export", () => existsSync(received));

    const requests = readFileSync(received, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { type: string; body: OtlpTraces });
    expect(requests[0]!.type).toContain("application/json");
    const gid = readFileSync(join(topo.dir, "data", "gateway-id"), "utf8").trim();
    const logs = topo.gatewayLog.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logs.find((l) => l.msg === "gateway up")!.gid).toBe(gid);
    // The same gid is the gateway's row in its store and stamps every audit row it wrote.
    const db = new Database(join(topo.dir, "data", "glassgate.db"), { readonly: true });
    try {
      expect(db.query("SELECT gid, version FROM gateways").all()).toEqual([{ gid, version: SERVICE_VERSION }]);
      const audit = db.query("SELECT count(*) AS n, sum(gid IS NOT ?) AS other FROM audit_events").get(gid) as { n: number; other: number };
      expect(audit.n).toBeGreaterThan(0);
      expect(audit.other).toBe(0);
    } finally {
      db.close();
    }
    for (const r of requests) for (const rs of r.body.resourceSpans) {
      expect(attr(rs.resource.attributes, "service.name")).toBe("glassgate");
      expect(attr(rs.resource.attributes, "service.instance.id")).toBe(gid);
    }
    const spans = requests.flatMap((r) => r.body.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((s) => s.spans)));

    // The client initiated: the gateway's responder span, confirmed by the client's first packet.
    const hs = spans.find((s) => s.name === "wireguard.handshake" && attr(s.attributes, "cid") === conn.cid)!;
    expect(hs).toBeDefined();
    expect(attr(hs.attributes, "role")).toBe("responder");
    expect(attr(hs.attributes, "remote")).toBe(conn.endpoint!);
    expect(String(attr(hs.attributes, "session"))).toMatch(new RegExp(`^${conn.cid}\\|\\d+$`));
    expect(hs.status?.code).toBe(1);
    const line = logs.find((l) => l.msg === "handshake completed" && l.cid === conn.cid)!;
    expect(line.trace_id).toBe(hs.traceId);
    // Its audit row is a store write inside the handshake's trace.
    expect(spans.some((s) => s.name === "store audit.record" && s.traceId === hs.traceId)).toBe(true);

    // Admin requests: by route pattern when a route answered, by method alone when auth refused it.
    const listed = spans.find((s) => s.name === "GET /api/connections")!;
    expect(attr(listed.attributes, "http.response.status_code")).toBe(200);
    const refused = spans.find((s) => s.name === "GET" && attr(s.attributes, "http.response.status_code") === 401);
    expect(refused).toBeDefined();
  }, 60_000);
});
