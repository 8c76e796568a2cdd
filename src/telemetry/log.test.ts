import { expect, test } from "bun:test";
import { Logger, errorChain, logMs, memorySink, parseLogFilter, type LogLine } from "./log.ts";
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

test("a field that JSON cannot serialise (BigInt, a cycle, a throwing getter) never throws into the caller, and the line still serialises", () => {
  let written = "";
  const log = new Logger(parseLogFilter("info"), (line) => void (written = JSON.stringify(line))).target("tunnel");
  const cycle: Record<string, unknown> = { name: "loop" };
  cycle.self = cycle;
  const getter = { get boom(): string { throw new Error("getter"); } };
  expect(() => log.info("odd fields", { counter: 2n ** 64n, cycle, nested: { n: 5n }, getter, bare: Object.create(null), err: Object.create(null) })).not.toThrow();
  const line = JSON.parse(written);
  expect(line).toMatchObject({ msg: "odd fields", counter: "18446744073709551616", nested: { n: "5" }, bare: {} });
  expect(line.cycle).toStartWith("[not serialisable: ");
  expect(line.getter).toStartWith("[not serialisable: ");
  expect(line.err).toBe("[object without a printable form]");
});

test("attacker-sized field values are capped, so one line (and so the ring) stays bounded", () => {
  const ring = new LogRing(100);
  const log = new Logger(parseLogFilter("info"), ring.sink).target("dns");
  const huge = "a".repeat(1_000_000);
  const manyFields = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`f${i}`, "x".repeat(500)]));
  for (let i = 0; i < 100; i++) log.warn("query refused", { domain: huge, username: huge, err: new Error(huge), list: [huge], ...manyFields });
  const line = ring.query({ limit: 1 })[0]!;
  expect(line.domain).toStartWith("aaaa");
  expect(line.domain).toEndWith("…(+998976 chars)");
  expect(line.fields_dropped).toBeGreaterThan(900);
  const total = ring.query({ limit: 100 }).reduce((n, l) => n + JSON.stringify(l).length, 0);
  expect(total).toBeLessThan(100 * 20 * 1024);
});

test("a log ring subscriber that throws stops neither the logger's caller nor the other subscribers", () => {
  const ring = new LogRing(10);
  const seen: string[] = [];
  ring.subscribe(() => {
    throw new Error("stream closed");
  });
  ring.subscribe((l) => void seen.push(l.msg));
  const log = new Logger(parseLogFilter("info"), ring.sink).target("admin");
  expect(() => log.info("hello")).not.toThrow();
  expect(seen).toEqual(["hello"]);
});

test("durations in log fields are rounded to 0.1 ms; a missing one stays missing", () => {
  expect(logMs(48.98876953125)).toBe(49);
  expect(logMs(0.04)).toBe(0);
  expect(logMs(12.3456)).toBe(12.3);
  expect(logMs(1234.56)).toBe(1234.6);
  expect(logMs(undefined)).toBeUndefined();
  // Printed as written: no binary-fraction tail in the JSON line.
  expect(JSON.stringify({ rtt_ms: logMs(0.1 + 0.2) })).toBe('{"rtt_ms":0.3}');
});

test("a logger with bound fields puts them on every line, and a line's own fields win", () => {
  const lines: LogLine[] = [];
  const log = new Logger(parseLogFilter("info"), memorySink(lines)).target("portal").with({ gid: "gw-9", rid: "bound" });
  log.info("joined");
  log.warn("message", { rid: "own", cid: 3 });
  expect(lines[0]).toMatchObject({ target: "portal", msg: "joined", gid: "gw-9", rid: "bound" });
  expect(lines[1]).toMatchObject({ gid: "gw-9", rid: "own", cid: 3 });
});
