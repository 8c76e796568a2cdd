import { describe, expect, test } from "bun:test";
import { sameOriginPath } from "./origin.ts";

const ORIGIN = "http://gw.local:8080";

describe("login redirect target", () => {
  const offsite = [
    "/\\evil.example", "\\\\evil.example", "\\/evil.example", "//evil.example", "///evil.example", "/\t/evil.example", "/\n/evil.example",
    "\t//evil.example", " //evil.example", "\u0000//evil.example", "/\r\n/evil.example", "https://evil.example/",
    "https:/evil.example", "HTTP://evil.example", "http://gw.local:8081/", "https://gw.local:8080/", "http://gw.local/", "javascript:alert(1)",
    "data:text/html,x", "/%5Cevil.example", "/%5cevil.example", "/%2F/evil.example", "/%2f%2fevil.example", "/%09/evil.example", "/%0d%0a/x",
    "/.//evil.example", "/./\\evil.example", "/a/..//evil.example", "//gw.local:8080@evil.example", "http://gw.local:8080@evil.example/",
    "/%E0%A4%A", "//evil%2eexample", "/\\/evil.example", "\\",
  ];
  for (const next of offsite) {
    test(`${JSON.stringify(next)} goes to / instead`, () => {
      expect(sameOriginPath(next, ORIGIN)).toBe("/");
    });
  }

  test("same-origin paths are kept with their query and fragment", () => {
    expect(sameOriginPath("/connections/42", ORIGIN)).toBe("/connections/42");
    expect(sameOriginPath("/logs?cid=7&level=warn#x", ORIGIN)).toBe("/logs?cid=7&level=warn#x");
    expect(sameOriginPath("http://gw.local:8080/peers", ORIGIN)).toBe("/peers");
    expect(sameOriginPath("/a/../peers", ORIGIN)).toBe("/peers");
    expect(sameOriginPath(undefined, ORIGIN)).toBe("/");
    expect(sameOriginPath("", ORIGIN)).toBe("/");
    // Relative forms a browser keeps on this origin stay there (harmless, if odd).
    expect(sameOriginPath("http:evil.example", ORIGIN)).toBe("/evil.example");
    expect(sameOriginPath("\u3002/evil.example", ORIGIN)).toBe("/%E3%80%82/evil.example");
  });

  test("whatever comes back, a browser resolves it to our origin", () => {
    const samples = [...offsite, "/peers", "/x?y=//evil.example", "/%2e%2e/peers"];
    for (const next of samples) {
      const out = sameOriginPath(next, ORIGIN);
      expect(out).toStartWith("/");
      expect(out).not.toMatch(/^\/[/\\]/);
      expect(new URL(out, "http://other.example").origin).toBe("http://other.example");
    }
  });
});
