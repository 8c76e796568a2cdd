import { expect, test } from "bun:test";
import { parseCidr } from "../ip/address.ts";
import { addressClashes, clashMessage, clashWith } from "./overlap.ts";

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
