import { expect, test } from "bun:test";
import { parseCidr } from "../ip/address.ts";
import { LogRing } from "../telemetry/log-ring.ts";
import { Logger, parseLogFilter } from "../telemetry/log.ts";
import { batchErrors, TunRoutes, type IpCommand, type WantedRoute } from "./routes.ts";

/** A host's main table that `ip` reads and changes, as JSON like `ip -j route` prints it. */
function fakeHost(routes: { dst: string; dev?: string; gateway?: string }[]) {
  const calls: string[] = [];
  const ip: IpCommand = (args) => {
    calls.push(args.join(" "));
    if (args[0] === "-j") return args[1] === "-6" ? "[]" : JSON.stringify(routes);
    const [, verb, dst, , dev] = args;
    if (verb === "add") {
      if (routes.some((r) => r.dst === dst)) throw new Error(`ip ${args.join(" ")}: RTNETLINK answers: File exists`);
      routes.push({ dst: dst!, dev });
    } else if (verb === "del") routes.splice(routes.findIndex((r) => r.dst === dst && r.dev === dev), 1);
    return "";
  };
  return { ip, calls, routes };
}

function setup() {
  const host = fakeHost([{ dst: "default", gateway: "192.168.1.1", dev: "eth0" }, { dst: "192.168.1.0/24", dev: "eth0" }]);
  const ring = new LogRing(100);
  const routes = new TunRoutes("gg0", new Logger(parseLogFilter("debug"), ring.sink).target("routes"), host.ip);
  return { host, ring, routes };
}
const peer = { cid: 7, publicKey: "P".repeat(43) + "=", name: "branch" };
const want = (...cidrs: string[]): WantedRoute[] => cidrs.map((c) => ({ prefix: parseCidr(c), peer }));

test("a refused prefix is logged once as an error naming peer and prefix, not on every sync", () => {
  const { ring, routes, host } = setup();
  routes.sync(want("192.168.1.0/25", "10.60.0.0/16"));
  routes.sync(want("192.168.1.0/25", "10.60.0.0/16", "10.61.0.0/16"));
  const refused = ring.query({ level: "error", limit: 100 });
  expect(refused).toHaveLength(1);
  expect(refused[0]!).toMatchObject({ cid: 7, public_key: peer.publicKey, peer: "branch", allowed_ips: "192.168.1.0/25", conflict: "192.168.1.0/24 dev eth0" });
  expect(host.routes.filter((r) => r.dev === "gg0").map((r) => r.dst)).toEqual(["10.60.0.0/16", "10.61.0.0/16"]);
});

test("an unchanged set of peer prefixes does not run ip at all", () => {
  const { routes, host } = setup();
  routes.sync(want("10.60.0.0/16"));
  const n = host.calls.length;
  routes.sync(want("10.60.0.0/16"));
  expect(host.calls.length).toBe(n);
});

test("a route appearing between reading the table and adding is not taken over (add, never replace)", () => {
  const { ring, host } = setup();
  const realIp = host.ip;
  // Someone adds the same prefix via eth0 just after we read the table.
  const racing: IpCommand = (args) => {
    if (args[1] === "add") host.routes.push({ dst: args[2]!, dev: "eth0" });
    return realIp(args);
  };
  const r = new TunRoutes("gg0", new Logger(parseLogFilter("info"), ring.sink).target("routes"), racing);
  r.sync(want("10.60.0.0/16"));
  expect(host.routes.filter((x) => x.dst === "10.60.0.0/16").map((x) => x.dev)).toEqual(["eth0"]);
  expect(ring.query({ level: "error", limit: 10 })[0]!.msg).toContain("could not be added");
  expect(r.installed.size).toBe(0);
});

test("routes of a peer that left are removed; the host's own stay", () => {
  const { routes, host } = setup();
  routes.sync(want("10.60.0.0/16", "10.61.0.0/16"));
  routes.sync(want("10.61.0.0/16"));
  expect(host.routes.map((r) => `${r.dst} ${r.dev}`)).toEqual(["default eth0", "192.168.1.0/24 eth0", "10.61.0.0/16 gg0"]);
  routes.sync([]);
  expect(host.routes.map((r) => `${r.dst} ${r.dev}`)).toEqual(["default eth0", "192.168.1.0/24 eth0"]);
});

test("one `ip -batch` run: each failed command gets its own error, the others count as done", () => {
  const cmds = [1, 1, 2, 3, 9].map((n, i) => ["route", i === 4 ? "del" : "add", `10.1.0.${n}/32`, "dev", i === 3 ? "nosuch" : "d0"]);
  // What ip 6.x printed here for these five commands (the second is a duplicate, the fourth names no device).
  const stderr = "RTNETLINK answers: File exists\nCommand failed -:2\nCannot find device \"nosuch\"\nCommand failed -:4\nRTNETLINK answers: No such process\nCommand failed -:5\n";
  const failed = batchErrors(cmds, stderr, 1);
  expect([...failed.keys()]).toEqual([1, 3, 4]);
  expect(failed.get(1)).toBe("ip route add 10.1.0.1/32 dev d0: RTNETLINK answers: File exists");
  expect(failed.get(3)).toContain('Cannot find device "nosuch"');
  expect(batchErrors(cmds, "", 0).size).toBe(0);
  // ip could not run at all: nothing was done.
  expect(batchErrors(cmds, "ip: command not found", 127).size).toBe(5);
});

test("the start's routes go in beside the caller; a sync asked for meanwhile runs right after, never beside it", async () => {
  const { routes, host } = setup();
  const started = routes.syncInBackground(want("10.60.0.0/16", "10.61.0.0/16"));
  // A peer change before the batch is done: nothing runs now, and it is not lost.
  expect(routes.sync(want("10.60.0.0/16"))).toBeUndefined();
  const plan = await started;
  expect(plan!.add.map((w) => w.prefix.prefix)).toEqual([16, 16]);
  expect(host.routes.filter((r) => r.dev === "gg0").map((r) => r.dst)).toEqual(["10.60.0.0/16"]);
  expect([...routes.installed]).toEqual(["10.60.0.0/16"]);
});
