import { expect, test } from "bun:test";
import { Logger, errorChain, memorySink, parseLogFilter, type LogLine } from "./log.ts";
import { LogRing } from "./log-ring.ts";

test("per-target levels: the most specific directive wins", () => {
  const lines: LogLine[] = [];
  const log = new Logger(parseLogFilter("warn,tunnel=debug,tunnel::nat=error"), memorySink(lines));
  expect(log.enabled("debug", "tunnel")).toBe(true);
  expect(log.enabled("debug", "tunnel::nat")).toBe(false);
  expect(log.enabled("info", "gateway")).toBe(false);
  expect(log.enabled("warn", "gateway")).toBe(true);
  log.log("debug", "tunnel", "x");
  log.log("info", "gateway", "y");
  expect(lines.map((l) => l.msg)).toEqual(["x"]);
});

test("a bad GLASSGATE_LOG names the directive", () => {
  expect(() => parseLogFilter("info,tunnel=loud")).toThrow('GLASSGATE_LOG: "tunnel=loud" has unknown level "loud"');
});

test("a line is one JSON object with ts, level, target, msg, ids and the full error chain", () => {
  const lines: LogLine[] = [];
  const log = new Logger(parseLogFilter("info"), memorySink(lines)).target("io");
  const err = new Error("reading TUN", { cause: new Error("EIO", { cause: "device gone" }) });
  log.warn("failed", { cid: 42, session: "42|1", err, skipped: undefined });
  expect(lines[0]).toMatchObject({ level: "warn", target: "io", msg: "failed", cid: 42, session: "42|1", err: "reading TUN: EIO: device gone" });
  expect("skipped" in lines[0]!).toBe(false);
  expect(Date.parse(lines[0]!.ts)).toBeGreaterThan(0);
  expect(errorChain("plain")).toBe("plain");
});

test("gated hot-path logs build nothing when off", () => {
  const log = new Logger(parseLogFilter("info"), () => { throw new Error("must not be called"); }).target("tunnel");
  let built = 0;
  const fields = () => ((built++), { len: 1 });
  if (log.enabled("trace")) log.trace("decrypted", fields());
  expect(built).toBe(0);
});

test("the ring keeps the newest lines and filters by id, level, target and time", () => {
  const ring = new LogRing(5);
  const log = new Logger(parseLogFilter("trace"), ring.sink);
  for (let i = 0; i < 8; i++) log.log(i % 2 ? "warn" : "info", i < 4 ? "tunnel" : "tunnel::nat", `m${i}`, { cid: i % 3, rid: i === 7 ? "r1" : undefined });
  expect(ring.size).toBe(5);
  expect(ring.query().map((l) => l.msg)).toEqual(["m7", "m6", "m5", "m4", "m3"]);
  expect(ring.query({ cid: 1 }).map((l) => l.msg)).toEqual(["m7", "m4"]);
  expect(ring.query({ level: "warn" }).map((l) => l.msg)).toEqual(["m7", "m5", "m3"]);
  expect(ring.query({ target: "tunnel::nat" }).map((l) => l.msg)).toEqual(["m7", "m6", "m5", "m4"]);
  expect(ring.query({ target: "tunnel" })).toHaveLength(5);
  expect(ring.query({ rid: "r1" }).map((l) => l.msg)).toEqual(["m7"]);
  expect(ring.query({ limit: 2 })).toHaveLength(2);
  expect(ring.query({ since: "2999-01-01T00:00:00Z" })).toHaveLength(0);
  const seen: string[] = [];
  const off = ring.subscribe((l) => seen.push(l.msg));
  log.log("info", "x", "live");
  off();
  log.log("info", "x", "after");
  expect(seen).toEqual(["live"]);
});
