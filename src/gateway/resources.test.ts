import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { domainMatches, MAX_PATTERN_DOUBLE_STARS, MAX_PATTERN_LABELS, parseResource, type MatchMeter } from "./resources.ts";

/** The obvious backtracking matcher, the specification for small inputs (exponential on big ones). */
function reference(pattern: string, domain: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, "").split(".");
  const d = domain.toLowerCase().replace(/\.$/, "").split(".");
  const label = (pl: string, dl: string) =>
    pl === "*" ? dl.length > 0 : new RegExp(`^${pl.replace(/[.+^${}()|[\]\\-]/g, "\\$&").replace(/\?/g, ".").replace(/\*/g, ".*")}$`).test(dl);
  const go = (pi: number, di: number): boolean => {
    if (pi === p.length) return di === d.length;
    if (p[pi] === "**") {
      for (let k = di; k <= d.length; k++) if (go(pi + 1, k)) return true;
      return false;
    }
    if (pi === 0 && p[0] === "*" && go(1, di)) return true; // a leading `*.` also matches the apex
    return di < d.length && label(p[pi]!, d[di]!) && go(pi + 1, di + 1);
  };
  return go(0, 0);
}

/** What the linear matcher may spend: the label grid plus one glob per cell (see domainMatches). */
const budget = (pattern: string, domain: string) => {
  const p = pattern.split(".").length;
  const n = domain.split(".").length;
  return 2 * (p + 1) * (n + 1) + (pattern.length + 1) * (domain.length + 1);
};

describe("DNS resource patterns", () => {
  test("matching agrees with the backtracking reference on small patterns and names", () => {
    const ch = fc.constantFrom("a", "b", "-");
    const name = fc.array(fc.string({ unit: ch, minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 5 }).map((l) => l.join("."));
    const plabel = fc.oneof(fc.constantFrom("*", "**"), fc.string({ unit: fc.constantFrom("a", "b", "-", "?", "*"), minLength: 1, maxLength: 4 }).filter((l) => !l.includes("**")));
    const pattern = fc.array(plabel, { minLength: 1, maxLength: 5 }).map((l) => l.join("."));
    fc.assert(fc.property(pattern, name, (p, d) => {
      const m: MatchMeter = { steps: 0 };
      expect(domainMatches(p, d, m)).toBe(reference(p, d));
      expect(m.steps).toBeLessThanOrEqual(budget(p, d));
    }), { numRuns: 3000 });
  });

  test("adversarial patterns cost work linear in pattern labels × name labels, not exponential", () => {
    // The 42 s case from the review: twelve `**` against a 21-label name that almost matches.
    const cases: [string, string][] = [
      [Array(12).fill("**").join(".") + ".x.example.com", Array(21).fill("a").join(".") + ".example.com"],
      [Array(30).fill("**").join(".") + ".nomatch", Array(120).fill("a").join(".")],
      [Array(31).fill("*a*a*a*a*").join(".") + ".b", Array(60).fill("a".repeat(60)).join(".")],
      ["*." + Array(30).fill("**").join("."), Array(100).fill("q").join(".")],
    ];
    // The meter counts (so a matcher that skips it cannot pass the bound below vacuously).
    const probe: MatchMeter = { steps: 0 };
    domainMatches("a.example.com", "a.example.com", probe);
    expect(probe.steps).toBeGreaterThan(0);
    for (const [p, d] of cases) {
      const m: MatchMeter = { steps: 0 };
      domainMatches(p, d, m);
      expect(m.steps).toBeGreaterThan(0);
      expect(m.steps).toBeLessThanOrEqual(budget(p, d));
    }
    // The first case does not match, and one more label at the end makes it match.
    expect(domainMatches(cases[0]![0], cases[0]![1])).toBe(false);
    expect(domainMatches(cases[0]![0], "a.b.x.example.com")).toBe(true);
  });

  test("a pattern too complex to match cheaply is refused at creation, naming the value and the limit", () => {
    const stars = Array(MAX_PATTERN_DOUBLE_STARS + 1).fill("**").join(".") + ".example.com";
    expect(() => parseResource({ type: "dns", id: "x", address: stars })).toThrow(`resource address: "${stars}" has ${MAX_PATTERN_DOUBLE_STARS + 1} "**" labels (at most ${MAX_PATTERN_DOUBLE_STARS})`);
    const deep = Array(MAX_PATTERN_LABELS).fill("a").join(".") + ".com";
    expect(() => parseResource({ type: "dns", id: "x", address: deep })).toThrow(`has ${MAX_PATTERN_LABELS + 1} labels (at most ${MAX_PATTERN_LABELS})`);
    const long = `${"a".repeat(60)}.`.repeat(5) + "com";
    expect(() => parseResource({ type: "dns", id: "x", address: long })).toThrow(`"${long.slice(0, 64)}…" is 308 characters long (at most 253)`);
    expect(() => parseResource({ type: "dns", id: "x", address: `${"b".repeat(64)}.com` })).toThrow("has a label of 64 characters (at most 63)");
    expect(() => parseResource({ type: "dns", id: "x", address: "a**.example.com" })).toThrow('"**" stands for whole labels only');
    // What people write keeps working.
    for (const ok of ["app.example.com", "*.example.com", "**.example.com", "ap?.example.com", "**.corp.**.example.com", "web-*.example.com"]) {
      expect(parseResource({ type: "dns", id: "x", address: ok })).toMatchObject({ pattern: ok });
    }
  });
});
