import { expect, test } from "bun:test";
import { envFlag } from "./env.ts";

test("a boolean env var is set only by a true word, in any case", () => {
  for (const v of ["1", "true", "TRUE", "Yes", "on", " yes "]) expect([v, envFlag({ X: v }, "X")]).toEqual([v, true]);
  for (const v of [undefined, "", "0", "false", "False", "no", "OFF"]) expect([v, envFlag({ X: v }, "X")]).toEqual([v, false]);
});

test("anything else is an error naming the variable and its (capped) value", () => {
  expect(() => envFlag({ FIREZONE_NO_INC_BUF: "maybe" }, "FIREZONE_NO_INC_BUF")).toThrow('FIREZONE_NO_INC_BUF: "maybe" is not a yes/no value');
  expect(() => envFlag({ X: "z".repeat(500) }, "X")).toThrow(`X: "${"z".repeat(40)}…" is not`);
});
