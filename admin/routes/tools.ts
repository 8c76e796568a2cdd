// Operator tools: the policy tester (page + `GET /api/policy/test`) and per-connection packet
// capture (API + the connection page's panel). Input is validated with admin/input.ts (400 naming
// the field); the gateway answers through AdminGateway.policyTest (the data path's own decision
// code) and AdminGateway.capture.
import { Hono, type Context } from "hono";
import { html } from "hono/html";
import { z } from "zod";
import { CAPTURE_CAPS, CAPTURE_DEFAULTS, CaptureError, captureLimits } from "../../src/io/capture.ts";
import { PolicyQueryError, type PolicyQuery, type PolicyTestResult } from "../../src/standalone/policy-test.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { capQuoted, enumParam, InputError, intParam, jsonObject, parseStrict, textParam } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import * as tv from "../views/tools.ts";
import { CID, formText, page, principal, session } from "./common.ts";

const PROTOCOLS = ["tcp", "udp", "icmp"] as const;

/** The tester's query: peer, dst, protocol (default tcp), port (required for tcp and udp). */
export function policyQuery(q: Record<string, string | undefined>): PolicyQuery {
  const peer = textParam(q, "peer", 200);
  if (!peer) throw new InputError("peer", "is required: a peer's name, public key or cid");
  const dst = textParam(q, "dst", 253);
  if (!dst) throw new InputError("dst", "is required: an IP address or a domain name");
  const protocol = enumParam(q, "protocol", PROTOCOLS) ?? "tcp";
  const port = intParam(q, "port", { min: 0, max: 65535 });
  if (protocol !== "icmp" && port === undefined) throw new InputError("port", `is required for ${protocol}`);
  return { peer: peer.trim(), dst: dst.trim(), protocol, port };
}

/** The capture panel for the connection page (pages.ts puts it below the connection's facts). */
export function capturePanelFor(opts: AdminOptions, c: Context<AdminEnv>, cid: number) {
  if (!opts.gateway.capture) return html``;
  return tv.capturePanel(cid, opts.gateway.capture.status(cid), session(c)?.csrfToken ?? "", CAPTURE_DEFAULTS, CAPTURE_CAPS);
}

export function toolRoutes(opts: AdminOptions) {
  const { gateway, store } = opts;
  const run = (q: PolicyQuery): PolicyTestResult => {
    if (!gateway.policyTest) throw new Error("this gateway has no policy tester");
    try {
      return gateway.policyTest(q);
    } catch (err) {
      if (err instanceof PolicyQueryError) throw new InputError(err.field, err.message);
      throw err;
    }
  };
  const peerChoices = () => {
    const names = new Map((store?.peers.list() ?? []).map((p) => [p.publicKey, p.name]));
    const fromStore = (store?.peers.list() ?? []).map((p) => ({ value: p.name, label: p.publicKey }));
    const fromFile = gateway.connections().filter((c) => !names.has(c.public_key)).map((c) => ({ value: c.public_key, label: `cid ${c.cid} (config file)` }));
    return [...fromStore, ...fromFile];
  };
  const testerPage = (c: Context<AdminEnv>) => {
    const q = c.req.query();
    const form = { peer: q.peer, dst: q.dst, port: q.port, protocol: q.protocol };
    if (!q.peer && !q.dst) return page(c, "Policy tester", tv.policyTesterPage(form, peerChoices()));
    try {
      return page(c, "Policy tester", tv.policyTesterPage(form, peerChoices(), run(policyQuery(q))));
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      return page(c, "Policy tester", tv.policyTesterPage(form, peerChoices(), undefined, { field: err.field, message: err.message }), 400);
    }
  };

  // ── packet capture ──
  const control = () => {
    if (!gateway.capture) throw new Error("this gateway has no packet capture");
    return gateway.capture;
  };
  /** The route's cid, when it names a connection in the data plane. */
  const connectionCid = (c: Context<AdminEnv>): number | undefined => {
    const cid = intParam(c.req.param(), "cid", CID)!;
    return gateway.connections().some((x) => x.cid === cid) ? cid : undefined;
  };
  const notFound = (c: Context<AdminEnv>) => c.json({ error: "not_found", message: `no connection ${c.req.param("cid")?.slice(0, 16)}` }, 404);
  const pcap = (c: Context<AdminEnv>) => {
    const cid = intParam(c.req.param(), "cid", CID)!;
    const file = gateway.capture?.pcap(cid);
    if (!file) return c.json({ error: "not_found", message: `no capture of connection ${cid}` }, 404);
    return c.body(file as Uint8Array<ArrayBuffer>, 200, {
      "content-type": "application/vnd.tcpdump.pcap",
      "content-disposition": `attachment; filename="glassgate-cid-${cid}.pcap"`,
      "cache-control": "no-store",
    });
  };
  const panel = (c: Context<AdminEnv>, cid: number, error?: string) =>
    tv.capturePanel(cid, gateway.capture?.status(cid), session(c)?.csrfToken ?? "", CAPTURE_DEFAULTS, CAPTURE_CAPS, error);

  return new Hono<AdminEnv>()
    .get("/tools/policy", testerPage)
    .get("/api/policy/test", (c) => c.json(run(policyQuery(c.req.query()))))
    .post("/api/connections/:cid/capture", async (c) => {
      const cid = connectionCid(c);
      if (cid === undefined) return notFound(c);
      const body = parseStrict(CAPTURE_BODY, await jsonObject(c));
      try {
        return c.json(control().start(cid, captureLimits(body), principal(c).actor), 201);
      } catch (err) {
        if (err instanceof CaptureError) return c.json({ error: "conflict", message: capQuoted(err.message) }, 409);
        throw err;
      }
    })
    .get("/api/connections/:cid/capture", (c) => {
      const s = gateway.capture?.status(intParam(c.req.param(), "cid", CID)!);
      return s ? c.json(s) : c.json({ error: "not_found", message: "no capture of this connection" }, 404);
    })
    .delete("/api/connections/:cid/capture", (c) => {
      const s = control().stop(intParam(c.req.param(), "cid", CID)!, principal(c).actor);
      return s ? c.json(s) : c.json({ error: "not_found", message: "no capture running on this connection" }, 404);
    })
    .get("/api/connections/:cid/capture.pcap", pcap)
    .get("/connections/:cid/capture.pcap", pcap)
    .get("/connections/:cid/capture/panel", (c) => c.html(panel(c, intParam(c.req.param(), "cid", CID)!)))
    .post("/connections/:cid/capture", async (c) => {
      const cid = connectionCid(c);
      if (cid === undefined) return c.text(`no connection ${c.req.param("cid").slice(0, 16)}`, 404);
      const f = await c.req.parseBody();
      const q = Object.fromEntries(["max_packets", "max_bytes", "max_seconds"].map((k) => [k, formText(f, k).trim()]));
      try {
        control().start(cid, captureLimits({
          max_packets: intParam(q, "max_packets", RANGES.max_packets),
          max_bytes: intParam(q, "max_bytes", RANGES.max_bytes),
          max_seconds: intParam(q, "max_seconds", RANGES.max_seconds),
        }), principal(c).actor);
      } catch (err) {
        if (err instanceof InputError || err instanceof CaptureError) {
          return page(c, `Connection ${cid}`, html`<p><a href="/connections/${cid}">back to connection ${cid}</a></p>${panel(c, cid, capQuoted(err.message))}`, err instanceof InputError ? 400 : 409);
        }
        throw err;
      }
      return c.redirect(`/connections/${cid}#capture`);
    })
    .post("/connections/:cid/capture/stop", (c) => {
      const cid = intParam(c.req.param(), "cid", CID)!;
      control().stop(cid, principal(c).actor);
      return c.redirect(`/connections/${cid}#capture`);
    });
}

const RANGES = {
  max_packets: { min: 1, max: CAPTURE_CAPS.maxPackets },
  // Room for the file header and one full-size packet at least.
  max_bytes: { min: 1024, max: CAPTURE_CAPS.maxBytes },
  max_seconds: { min: 1, max: CAPTURE_CAPS.maxSeconds },
} as const;

const limit = (r: { min: number; max: number }) =>
  z.number({ message: "is not a number" }).int({ message: "is not a whole number" })
    .min(r.min, { message: `is below ${r.min}` }).max(r.max, { message: `is above the hard cap of ${r.max}` }).optional();

/** `POST /api/connections/:cid/capture`: every limit optional (defaults 1000 packets, 1 MiB, 60 s). */
const CAPTURE_BODY = z.strictObject({ max_packets: limit(RANGES.max_packets), max_bytes: limit(RANGES.max_bytes), max_seconds: limit(RANGES.max_seconds) });
