import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { externalId, loginUrl, redactedUrl } from "./login-url.ts";
import { userAgent } from "./user-agent.ts";

const KEY = "uMBCkAxTewfSgypIyxdQ18uCi84HLtKmQJy0wvQrYWY=";

describe("login URL", () => {
  test("http becomes ws and the query carries token, external_id, name, public_key in Firezone's order", () => {
    const url = new URL(loginUrl({ apiUrl: "http://127.0.0.1:8081", token: "t+/=", id: "gw-one", name: "edge 1", publicKey: KEY }));
    expect(url.protocol).toBe("ws:");
    expect(url.pathname).toBe("/gateway/websocket");
    expect([...url.searchParams.keys()]).toEqual(["token", "external_id", "name", "public_key"]);
    expect(url.searchParams.get("token")).toBe("t+/=");
    expect(url.searchParams.get("external_id")).toBe("gw-one"); // not a UUID: raw
    expect(url.searchParams.get("name")).toBe("edge 1");
    expect(url.searchParams.get("public_key")).toBe(KEY);
    expect(url.searchParams.has("vsn")).toBe(false);
  });

  test("https becomes wss, a base path is kept, the client mode has its own path", () => {
    const url = new URL(loginUrl({ apiUrl: "https://portal.example/api/", token: "t", id: "x", name: "n", publicKey: KEY, mode: "client" }));
    expect(`${url.protocol}//${url.host}${url.pathname}`).toBe("wss://portal.example/api/client/websocket");
  });

  test("a UUID id goes out as the hex SHA-256 of its text", () => {
    const id = "5bd8e0a4-4c1f-4e7f-9a55-2f0f7a1c0b11";
    expect(externalId(id)).toBe(createHash("sha256").update(id).digest("hex"));
    expect(externalId(id)).toHaveLength(64);
  });

  test("other schemes and non-URLs are refused naming FIREZONE_API_URL", () => {
    expect(() => loginUrl({ apiUrl: "ftp://x", token: "t", id: "x", name: "n", publicKey: KEY })).toThrow(/FIREZONE_API_URL: scheme "ftp"/);
    expect(() => loginUrl({ apiUrl: "not a url", token: "t", id: "x", name: "n", publicKey: KEY })).toThrow(/FIREZONE_API_URL/);
  });

  test("the redacted form hides the token", () => {
    const red = redactedUrl(loginUrl({ apiUrl: "ws://h", token: "secret-token", id: "x", name: "n", publicKey: KEY }));
    expect(red).not.toContain("secret-token");
    expect(red).toContain("token=REDACTED");
  });
});

describe("User-Agent", () => {
  test("OS/version gateway/version (arch; kernel), as Firezone after #10457", () => {
    expect(userAgent({ os: "Ubuntu", osVersion: "22.04", arch: "x86_64", kernel: "6.8.0" }, "gateway", "1.4.5")).toBe("Ubuntu/22.04 gateway/1.4.5 (x86_64; 6.8.0)");
  });
  test("only the known parts go in the parenthesis; non-ASCII is dropped", () => {
    expect(userAgent({ os: "Debian", osVersion: "13", kernel: "6.1.0" }, "gateway", "0.1.0")).toBe("Debian/13 gateway/0.1.0 (6.1.0)");
    expect(userAgent({ os: "Débian", osVersion: "13" }, "gateway", "0.1.0")).toBe("Dbian/13 gateway/0.1.0");
  });
});
