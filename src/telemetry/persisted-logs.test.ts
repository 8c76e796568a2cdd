import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LogArchive, Store } from "../store/index.ts";
import { Logger, parseLogFilter } from "./log.ts";
import { LogRing } from "./log-ring.ts";
import { PersistedLogs } from "./persisted-logs.ts";

const dir = () => mkdtempSync(join(tmpdir(), "gg-logs-"));

/** A logger writing to a ring backed by the store, with flushes run by hand. */
function setup(store: Store, opts: { batch?: number; queueCap?: number; ring?: number } = {}) {
  const deferred: (() => void)[] = [];
  const persisted = new PersistedLogs({ batch: opts.batch ?? 4, queueCap: opts.queueCap, defer: (f) => void deferred.push(f) });
  const ring = new LogRing(opts.ring ?? 100);
  ring.persistTo(persisted);
  persisted.attach(store.logs, (cid) => (cid === 7 ? "KEY7" : undefined), false);
  const log = new Logger(parseLogFilter("trace"), ring.sink).target("tunnel");
  return { persisted, ring, log, deferred };
}

test("only warnings, errors and connection lines are persisted, and only when a batch is due", () => {
  const store = Store.open(dir());
  const { log, deferred, persisted } = setup(store);
  log.info("gateway-wide chatter");
  log.debug("more chatter");
  log.trace("decrypted", { cid: 7 }); // per-packet lines stay in the ring
  log.warn("a warning");
  log.info("handshake completed", { cid: 7 });
  log.error("an error", { cid: 8 });
  expect(store.logs.count()).toBe(0); // nothing written on the logging call itself
  expect(deferred).toHaveLength(0);
  log.info("endpoint changed", { cid: 7 }); // the 4th kept line fills the batch
  expect(store.logs.count()).toBe(0);
  expect(deferred).toHaveLength(1);
  deferred.shift()!();
  expect(store.logs.count()).toBe(4);
  expect(persisted.queued).toBe(0);
  store.close();
});

test("a restart keeps a connection's lines and the Errors page's, and queries merge ring and store without duplicates", () => {
  const d = dir();
  let store = Store.open(d);
  let s = setup(store);
  s.log.warn("handshake gave up", { cid: 7 });
  s.log.info("handshake completed", { cid: 7 });
  s.persisted.close();
  // Still in this run's ring *and* in the store: shown once.
  expect(s.ring.query({ cid: 7 }).map((l) => l.msg)).toEqual(["handshake completed", "handshake gave up"]);
  store.close();

  store = Store.open(d); // the next run: an empty ring
  s = setup(store);
  s.log.info("handshake completed", { cid: 9 });
  s.persisted.flush();
  expect(s.ring.query({ cid: 7 }).map((l) => l.msg)).toEqual(["handshake completed", "handshake gave up"]);
  expect(s.ring.query({ level: "warn" }).map((l) => l.msg)).toEqual(["handshake gave up"]);
  // By peer: stored lines carry the key their cid had when written.
  expect(s.ring.peerLines(["KEY7"], [7]).map((l) => l.msg)).toEqual(["handshake completed", "handshake gave up"]);
  store.close();
});

test("lines that fell off the ring are read from the store, once", () => {
  const store = Store.open(dir());
  const s = setup(store, { ring: 3, batch: 1000 });
  for (let i = 0; i < 10; i++) s.log.warn(`w${i}`);
  s.persisted.flush();
  expect(s.ring.size).toBe(3);
  expect(s.ring.query({ limit: 100 }).map((l) => l.msg)).toEqual(["w9", "w8", "w7", "w6", "w5", "w4", "w3", "w2", "w1", "w0"]);
  store.close();
});

test("the persisted log is bounded: a row cap drops the oldest, retention drops old lines, a full queue counts what it refused", () => {
  const store = Store.open(dir());
  const archive = new LogArchive(store.db, 50);
  const persisted = new PersistedLogs({ batch: 1_000_000, queueCap: 100, defer: () => undefined });
  const ring = new LogRing(10);
  ring.persistTo(persisted);
  const log = new Logger(parseLogFilter("info"), ring.sink).target("io");
  for (let i = 0; i < 130; i++) log.warn(`w${i}`);
  expect(persisted.queued).toBe(100); // not attached yet: queued up to the cap
  expect(persisted.dropped).toBe(30);
  persisted.attach(archive, undefined, false);
  expect(persisted.flush()).toBe(100);
  expect(archive.count()).toBe(50);
  expect(archive.query({}, 1)[0]).toContain('"msg":"w99"');
  expect(archive.query({}, 100).at(-1)).toContain('"msg":"w50"');
  expect(archive.prune(Date.now() + 1)).toBe(50);
  expect(archive.count()).toBe(0);
  store.close();
});

test("a failing store loses the batch but never throws into the logging call", () => {
  const persisted = new PersistedLogs({ batch: 1, defer: (f) => f() });
  persisted.attach({ insert: () => { throw new Error("disk full"); }, query: () => [] }, undefined, false);
  const ring = new LogRing(10);
  ring.persistTo(persisted);
  const log = new Logger(parseLogFilter("info"), ring.sink).target("io");
  expect(() => log.error("boom")).not.toThrow();
  expect(persisted.failedFlushes).toBe(1);
  expect(ring.query({}).map((l) => l.msg)).toEqual(["boom"]);
});
