import { expect, test } from "bun:test";
import { AccessPolicy } from "./policy.ts";
import { DnsNat, ProxyIpAllocator } from "./dns-nat.ts";
import { DnsResponder } from "./dns-responder.ts";
import { buildQuery, TYPE_A } from "./dns-message.ts";
import { parseResource } from "./resources.ts";

const CID = 7;
function responder() {
  const policy = new AccessPolicy();
  policy.upsertResource(parseResource({ type: "dns", id: "web", address: "*.app.example.com" }));
  policy.authorize(CID, "web", null);
  return new DnsResponder(policy, new DnsNat(new ProxyIpAllocator()));
}

test("a tunnel client's query for its resource name gets proxy addresses", () => {
  expect(responder().answer(buildQuery(1, "x.app.example.com", TYPE_A), CID, 0)).toMatchObject({ kind: "answer", rid: "web" });
});

test("a query from outside the tunnel is refused, not answered or forwarded", () => {
  const v = responder().answer(buildQuery(1, "x.app.example.com", TYPE_A), undefined, 0);
  expect(v).toMatchObject({ kind: "refused", reason: "not_a_tunnel_client" });
  expect(v.kind === "refused" && v.bytes?.[3]).toBe(5); // REFUSED
});

test("a label with a dot inside cannot pose as a resource name", () => {
  // One label "x.app" then "example", "com": reads as x.app.example.com if joined naively.
  const q = buildQuery(1, "x-app.example.com", TYPE_A);
  q[12 + 2] = 0x2e; // "x-app" → "x.app" inside a single label
  const v = responder().answer(q, CID, 0);
  expect(v).toMatchObject({ kind: "refused", reason: "label contains a dot" });
});

test("a DNS response sent to the resolver gets no reply (no loops between resolvers)", () => {
  const q = buildQuery(1, "x.app.example.com", TYPE_A);
  q[2] = q[2]! | 0x80;
  expect(responder().answer(q, CID, 0)).toMatchObject({ kind: "refused", bytes: undefined });
});
