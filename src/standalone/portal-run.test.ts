import { expect, test } from "bun:test";
import { networkInterfaces } from "node:os";
import { hostCandidates, portalConfig } from "./portal-run.ts";

test("portal mode has no config file: no peers, no resources, no addresses until init, a fresh key each start", () => {
  const a = portalConfig(52625);
  const b = portalConfig(52625);
  expect(a.peers).toEqual([]);
  expect(a.resources).toEqual([]);
  expect(a.interface.addresses).toEqual([]);
  expect(a.interface.listenPort).toBe(52625);
  expect(a.interface.privateKey).toHaveLength(32);
  expect(Buffer.from(a.interface.privateKey).equals(Buffer.from(b.interface.privateKey))).toBe(false);
});

test("host candidates: every non-loopback, non-link-local address of the host with the WireGuard port, never the TUN's", () => {
  const all = Object.entries(networkInterfaces());
  const some = all.find(([, addrs]) => addrs?.some((a) => !a.internal));
  const hosts = hostCandidates(40000, "no-such-tun");
  for (const h of hosts) {
    expect(h.port).toBe(40000);
    expect(h.address.startsWith("127.") || h.address === "::1" || h.address.toLowerCase().startsWith("fe80")).toBe(false);
  }
  if (some) {
    // Leaving out an interface (as the TUN is) drops exactly its addresses.
    const [name, addrs] = some;
    const without = hostCandidates(40000, name);
    for (const a of addrs!) expect(without.some((h) => h.address === a.address)).toBe(false);
  }
});
