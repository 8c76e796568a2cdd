import { expect, test } from "bun:test";
import { parseCidr } from "../ip/address.ts";
import { AddressIndex, addressClashes, clashMessage, clashWith } from "./overlap.ts";

const owner = (label: string, ...cidrs: string[]) => ({ label, allowedIPs: cidrs.map((c) => parseCidr(c)) });

test("the same prefix claimed by two peers is a clash naming both and the address, whatever the host bits or spelling", () => {
  const alice = owner('"alice"', "10.99.0.2/32", "fd00:99::2/128");
  const bob = owner('"bob"', "10.99.0.9/32", "fd00:99:0:0::2");
  const c = clashWith(bob, [alice])!;
  expect(c.address).toBe("fd00:99::2/128");
  expect(c.owner).toBe(alice);
  expect(clashMessage(c)).toStartWith('fd00:99::2/128 is already an address of "alice"');
  expect(clashWith(owner("x", "10.50.1.7/16"), [owner("y", "10.50.0.0/16")])?.address).toBe("10.50.0.0/16");
});

test("nested prefixes and different families do not clash; a peer never clashes with itself", () => {
  const exit = owner("exit", "0.0.0.0/1", "128.0.0.0/1");
  expect(clashWith(owner("c", "10.99.0.2/32"), [exit])).toBeUndefined();
  expect(clashWith(owner("c", "10.99.0.0/24"), [owner("d", "10.99.0.0/25")])).toBeUndefined();
  expect(clashWith(owner("v4", "0.0.0.0/0"), [owner("v6", "::/0")])).toBeUndefined();
  expect(clashWith(exit, [exit])).toBeUndefined();
});

test("addressClashes reports each later claimant once, against the earliest owner", () => {
  const a = owner("a", "10.0.0.1/32");
  const b = owner("b", "10.0.0.2/32");
  const c = owner("c", "10.0.0.1/32", "10.0.0.2/32");
  const d = owner("d", "10.0.0.1/32");
  expect(addressClashes([a, b, c, d]).map((x) => [x.claimant.label, x.owner.label, x.address])).toEqual([["c", "a", "10.0.0.1/32"], ["d", "a", "10.0.0.1/32"]]);
});

test("the prefix index finds the same clashes as comparing every pair (random owners, host bits and both families)", () => {
  // The model: the earliest earlier owner sharing a prefix (host bits cleared), compared pairwise.
  const key = (c: string) => { const p = parseCidr(c, { clearHostBits: true }); return `${p.family}|${p.prefix}|${p.bytes.join(".")}`; };
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const pick = () => rnd(2) ? `10.${rnd(3)}.${rnd(4)}.${rnd(256)}/${[24, 30, 32][rnd(3)]}` : `fd00:${rnd(3)}::${rnd(16).toString(16)}/${[64, 126, 128][rnd(3)]}`;
  const owners = Array.from({ length: 300 }, (_, i) => owner(`p${i}`, ...Array.from({ length: 1 + rnd(3) }, pick)));
  const model: [string, string][] = [];
  for (let i = 1; i < owners.length; i++) {
    const mine = new Set(owners[i]!.allowedIPs.map((c) => key(`${c.bytes.length === 4 ? c.bytes.join(".") : formatIpText(c.bytes)}/${c.prefix}`)));
    const first = owners.slice(0, i).find((o) => o.allowedIPs.some((c) => mine.has(key(`${c.bytes.length === 4 ? c.bytes.join(".") : formatIpText(c.bytes)}/${c.prefix}`))));
    if (first) model.push([owners[i]!.label, first.label]);
  }
  expect(model.length).toBeGreaterThan(10);
  expect(addressClashes(owners).map((c) => [c.claimant.label, c.owner.label])).toEqual(model);
});

test("an index built once answers each new claimant against every owner added before it", () => {
  const index = new AddressIndex<ReturnType<typeof owner>>();
  const a = owner("a", "10.0.0.1/32");
  index.add(a);
  const b = owner("b", "10.0.0.0/24");
  expect(index.clashOf(b)).toBeUndefined();
  index.add(b);
  expect(index.clashOf(owner("c", "10.0.0.77/24"))?.owner).toBe(b);
  expect(index.clashOf(owner("c", "10.0.0.77/24"))?.address).toBe("10.0.0.0/24");
  expect(index.clashOf(a)).toBeUndefined(); // itself
});

function formatIpText(bytes: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(":");
}
