import { expect, test } from "bun:test";
import { osFromRelease, readSystemFacts } from "./system-facts.ts";

test("os-release IDs map to the names Firezone's User-Agent shows, quoted values unquoted", () => {
  expect(osFromRelease('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian GNU/Linux"\nVERSION_ID="13"\nID=debian\n')).toEqual({ os: "Debian", osVersion: "13" });
  expect(osFromRelease("NAME=Ubuntu\nVERSION_ID='22.04'\nID=ubuntu")).toEqual({ os: "Ubuntu", osVersion: "22.04" });
  expect(osFromRelease('NAME="Gentoo"\nID=gentoo')).toEqual({ os: "Gentoo", osVersion: "Unknown" });
});

test("this machine's facts: an OS, an arch in uname's words, a kernel release", () => {
  const f = readSystemFacts("/nonexistent/os-release");
  expect(f.os.length).toBeGreaterThan(0);
  expect(f.arch).toMatch(/^(x86_64|aarch64|arm|i686|riscv64|s390x|powerpc64|\w+)$/);
  expect(f.kernel).toMatch(/^\d+\.\d+/);
});
