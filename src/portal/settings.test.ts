import { expect, test } from "bun:test";
import { DEFAULT_API_URL, portalSettings } from "./settings.ts";

const noFile = (p: string): string => {
  throw new Error(`ENOENT ${p}`);
};

test("Firezone's variable names, with its default API URL", () => {
  expect(portalSettings({ FIREZONE_TOKEN: "abc.def", FIREZONE_ID: "gw-1", FIREZONE_NAME: "edge" }, noFile)).toEqual({ apiUrl: DEFAULT_API_URL, token: "abc.def", id: "gw-1", name: "edge" });
  expect(portalSettings({ FIREZONE_TOKEN: "t", FIREZONE_API_URL: "http://127.0.0.1:8081" }, noFile)).toMatchObject({ apiUrl: "http://127.0.0.1:8081", id: undefined, name: undefined });
});

test("FIREZONE_TOKEN_FILE is read and trimmed; both set, unreadable or empty is an error naming the variable", () => {
  expect(portalSettings({ FIREZONE_TOKEN_FILE: "/run/secrets/t" }, () => "from-file\n").token).toBe("from-file");
  expect(() => portalSettings({ FIREZONE_TOKEN: "a", FIREZONE_TOKEN_FILE: "/x" }, noFile)).toThrow(/both set/);
  expect(() => portalSettings({ FIREZONE_TOKEN_FILE: "/x" }, noFile)).toThrow(/^FIREZONE_TOKEN_FILE: cannot read \/x/);
  expect(() => portalSettings({ FIREZONE_TOKEN_FILE: "/x" }, () => "  \n")).toThrow(/FIREZONE_TOKEN_FILE: \/x is empty/);
});

test("a missing token or a bad URL names the variable", () => {
  expect(() => portalSettings({}, noFile)).toThrow(/^FIREZONE_TOKEN: not set/);
  expect(() => portalSettings({ FIREZONE_TOKEN: "a b" }, noFile)).toThrow(/whitespace/);
  expect(() => portalSettings({ FIREZONE_TOKEN: "t", FIREZONE_API_URL: "ftp://x" }, noFile)).toThrow(/^FIREZONE_API_URL: scheme "ftp"/);
  expect(() => portalSettings({ FIREZONE_TOKEN: "t", FIREZONE_API_URL: "::" }, noFile)).toThrow(/^FIREZONE_API_URL/);
});
