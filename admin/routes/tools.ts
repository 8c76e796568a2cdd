// Operator tools: the policy tester (page + `GET /api/policy/test`). Queries are validated with
// admin/input.ts (400 naming the field); the gateway answers through AdminGateway.policyTest,
// which runs the data path's own decision code.
import { Hono, type Context } from "hono";
import { PolicyQueryError, type PolicyQuery, type PolicyTestResult } from "../../src/standalone/policy-test.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { enumParam, InputError, intParam, textParam } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import * as tv from "../views/tools.ts";
import { page } from "./common.ts";

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
  return new Hono<AdminEnv>()
    .get("/tools/policy", testerPage)
    .get("/api/policy/test", (c) => c.json(run(policyQuery(c.req.query()))));
}
