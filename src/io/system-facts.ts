// What the portal User-Agent says about this machine: OS and version from /etc/os-release, arch and
// kernel release from uname. Read once at start; anything unreadable is left out, never fatal.
import { readFileSync } from "node:fs";
import { arch as nodeArch, release } from "node:os";
import type { SystemFacts } from "../portal/index.ts";

/** os_info's names for os-release IDs (what Firezone's User-Agent shows). */
const OS_NAMES: Record<string, string> = {
  debian: "Debian",
  ubuntu: "Ubuntu",
  alpine: "Alpine Linux",
  fedora: "Fedora",
  centos: "CentOS",
  rhel: "Red Hat Enterprise Linux",
  rocky: "Rocky Linux",
  almalinux: "AlmaLinux",
  arch: "Arch Linux",
  amzn: "Amazon Linux",
  opensuse: "openSUSE",
  "opensuse-leap": "openSUSE",
  nixos: "NixOS",
};

const UNAME_ARCH: Record<string, string> = { x64: "x86_64", arm64: "aarch64", arm: "arm", ia32: "i686", riscv64: "riscv64", s390x: "s390x", ppc64: "powerpc64" };

/** Parses os-release text (KEY=value lines, values optionally quoted) into OS name and version. */
export function osFromRelease(text: string): Pick<SystemFacts, "os" | "osVersion"> {
  const kv = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) kv.set(m[1]!, m[2]!.replace(/^(["'])(.*)\1$/, "$2"));
  }
  const id = kv.get("ID")?.toLowerCase();
  const os = (id && OS_NAMES[id]) ?? kv.get("NAME") ?? "Linux";
  return { os, osVersion: kv.get("VERSION_ID") ?? "Unknown" };
}

export function readSystemFacts(osReleasePath = "/etc/os-release"): SystemFacts {
  let os: Pick<SystemFacts, "os" | "osVersion"> = { os: "Linux", osVersion: "Unknown" };
  for (const path of [osReleasePath, "/usr/lib/os-release"]) {
    try {
      os = osFromRelease(readFileSync(path, "utf8"));
      break;
    } catch {
      // the next candidate, then the defaults
    }
  }
  const a = nodeArch();
  return { ...os, arch: UNAME_ARCH[a] ?? a, kernel: release() || undefined };
}
