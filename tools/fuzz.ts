// `bun run fuzz -- --count N [--seed S]`: random and mutated IP packets through the gateway's
// packet path — strict parse, access decision, NAT rewrites, ICMP error building; then STUN and TURN ChannelData (src/ice). Fails on any
// exception or on any rejection that was not counted; prints counts per outcome and reason.
import { parseArgs } from "node:util";
import { buildIcmpEcho, buildIcmpError, buildProhibited, buildTcp, buildUdp } from "../src/ip/build.ts";
import { computeL4Checksum, l4ChecksumOffset } from "../src/ip/checksum.ts";
import { PacketView } from "../src/ip/packet.ts";
import { setAddress, setInnerAddress, setPort } from "../src/ip/rewrite.ts";
import { GatewayCore } from "../src/gateway/core.ts";
import { parseResource } from "../src/gateway/resources.ts";
import { DnsNat, ProxyIpAllocator } from "../src/gateway/dns-nat.ts";
import { formatIp, parseIp } from "../src/ip/address.ts";
import { Attr, checkIntegrity, shortTermKey, type StunClass, StunWriter } from "../src/ice/stun.ts";
import { ChannelDataView } from "../src/ice/channel-data.ts";
import { ReasonCounters, readStun, type StunDropReason } from "../src/ice/drops.ts";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { count: { type: "string" }, seed: { type: "string" } }, strict: true });
const count = Number(values.count ?? 100_000);
let state = (Number(values.seed ?? Date.now()) >>> 0) || 1;
const rnd = () => {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state / 2 ** 32;
};
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: T[]) => xs[int(xs.length)]!;
// Small caps, so that eviction, refusal, port remapping and reclaiming all happen within a run.
const NAT_LIMITS = { total: 64, perClient: 16 };
const nat = new DnsNat(new ProxyIpAllocator({ total: 8, perClient: 4 }), NAT_LIMITS);
const proxies = ["a.example.com", "b.example.com"].flatMap((d) => [...nat.proxies.assign(d).v4, ...nat.proxies.assign(d).v6].map(formatIp));
nat.setResolved("a.example.com", [parseIp("192.0.2.1")!, parseIp("2001:db8::1")!], 0);
const v4 = () => (rnd() < 0.2 ? pick(proxies.filter((p) => !p.includes(":"))) : `${pick([10, 100, 192, 8])}.${int(256)}.${int(256)}.${int(256)}`);
const v6 = () => (rnd() < 0.2 ? pick(proxies.filter((p) => p.includes(":"))) : `fd00::${int(65536).toString(16)}:${int(65536).toString(16)}`);

// Seeds: valid packets of every kind, both families.
function seed(): Uint8Array {
  const six = rnd() < 0.3;
  const a = six ? { src: v6(), dst: v6() } : { src: v4(), dst: v4() };
  const payload = crypto.getRandomValues(new Uint8Array(int(64)));
  switch (int(4)) {
    case 0: return buildUdp({ ...a, srcPort: int(65536), dstPort: pick([53, 22, 443, int(65536)]), payload });
    case 1: return buildTcp({ ...a, srcPort: int(65536), dstPort: pick([22, 80, 5432, int(65536)]), flags: int(256), payload });
    case 2: return buildIcmpEcho({ ...a, id: int(65536), seq: int(65536), reply: rnd() < 0.5, payload });
    default: {
      const v = new PacketView();
      v.parse(buildUdp({ ...a, srcPort: int(65536), dstPort: int(65536), payload }));
      return buildIcmpError(v, six ? v6() : v4(), six ? 1 : 3, int(16));
    }
  }
}

// Mutations: flip, truncate, extend, splice lengths — the ways hostile input differs from valid.
function mutate(p: Uint8Array): Uint8Array {
  const x = p.slice();
  switch (int(6)) {
    case 0: for (let i = 0, n = 1 + int(4); i < n; i++) x[int(x.length)]! ^= 1 << int(8); return x;
    case 1: return x.subarray(0, int(x.length));
    case 2: return Uint8Array.of(...x, ...crypto.getRandomValues(new Uint8Array(1 + int(8))));
    case 3: x[2 + int(4)] = int(256); return x; // length fields
    case 4: x[0] = (x[0]! & 0x0f) | (int(16) << 4); return x; // version / IHL
    default: return crypto.getRandomValues(new Uint8Array(int(120)));
  }
}

const gw = new GatewayCore();
gw.policy.upsertResource(parseResource({ type: "cidr", id: "ten", address: "10.0.0.0/8", filters: [{ protocol: "tcp", port_range_start: 22, port_range_end: 22 }, { protocol: "icmp" }] }));
gw.policy.upsertResource(parseResource({ type: "cidr", id: "ula", address: "fd00::/8" }));
gw.policy.upsertResource(parseResource({ type: "internet", id: "inet" }));
gw.policy.authorize(1, "ten", null);
gw.policy.authorize(1, "ula", 1_000);

const outcomes = { forwarded: 0, dropped: 0 };
const view = new PacketView();
const t0 = performance.now();
for (let i = 0; i < count; i++) {
  const p = rnd() < 0.25 ? seed() : mutate(seed());
  const before = [...gw.drops.values()].reduce((a, b) => a + b, 0);
  let forwarded: boolean;
  try {
    forwarded = gw.fromClient(int(3), p, p.length, int(2_000));
    while (gw.pollReply()) { /* ICMP replies are built; the shell would send them */ }
    while (gw.pollEvent()) { /* events drained */ }
    // DNS-resource NAT both ways on whatever parses, then raw rewrites there and back.
    if (!view.parse(p)) {
      nat.outbound(view, int(2_000), int(6));
      nat.inbound(view, int(2_000));
      // The resolver rotates, fails, or the proxies get re-assigned: live sessions must cope.
      for (let d = nat.pollResolve(); d; d = nat.pollResolve()) {
        if (rnd() < 0.3) nat.resolveFailed(d, int(2_000));
        else nat.setResolved(d, [`192.0.2.${int(4)}`, `2001:db8::${int(4)}`].filter(() => rnd() < 0.7).map((x) => parseIp(x)!), int(2_000));
      }
      if (rnd() < 0.001) nat.reassignProxies("b.example.com", nat.proxies.assign("b.example.com").v4, []);
      // Names come and go: new ones under the caps, idle ones reclaimed.
      if (rnd() < 0.01) nat.proxies.request(`n${int(32)}.example.com`, int(3), int(2_000));
      if (rnd() < 0.001) nat.reclaimIdle(int(2_000), int(2_000));
      if (nat.sessions > NAT_LIMITS.total) {
        console.error(`input ${i}: ${nat.sessions} NAT sessions, over the cap of ${NAT_LIMITS.total}`);
        process.exit(1);
      }
      const addr = crypto.getRandomValues(new Uint8Array(view.addressLength));
      const oldDst = p.slice(view.dstAt, view.dstAt + view.addressLength);
      setAddress(view, "dst", addr);
      if (view.dstPort >= 0) setPort(view, "dst", int(65536));
      if (view.inner) setInnerAddress(view, "src", addr);
      setAddress(view, "dst", oldDst);
      const at = view.l4At + l4ChecksumOffset(view.protocol);
      if (view.protocol !== 17 || (p[at] ?? 0) | (p[at + 1] ?? 0)) void computeL4Checksum(view);
      if (rnd() < 0.01) buildProhibited(view);
    }
  } catch (err) {
    console.error(`input ${i} threw: ${(err as Error).stack}\npacket: ${Buffer.from(p).toString("hex")}`);
    process.exit(1);
  }
  const after = [...gw.drops.values()].reduce((a, b) => a + b, 0);
  if (!forwarded && after !== before + 1) {
    console.error(`input ${i} was rejected without being counted exactly once\npacket: ${Buffer.from(p).toString("hex")}`);
    process.exit(1);
  }
  outcomes[forwarded ? "forwarded" : "dropped"]++;
}
const secs = (performance.now() - t0) / 1000;
console.log(`fuzz: ${count} inputs in ${secs.toFixed(1)} s (${Math.round(count / secs)}/s): ${outcomes.forwarded} forwarded, ${outcomes.dropped} dropped`);
console.log(`dns nat: ${nat.sessions} sessions, evicted ${JSON.stringify(nat.limits.evicted)}, refused ${JSON.stringify(nat.limits.refused)}, ports remapped ${nat.portsRemapped}, displaced ${nat.displaced}; proxy names ${nat.proxies.size}, refused ${JSON.stringify(nat.proxies.refused)}`);
console.log(`drop reasons: ${[...gw.drops].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r}=${n}`).join(" ")}`);

// STUN/TURN (src/ice): valid messages with random attributes, mutated the same ways, through the
// strict parser, the integrity check and the ChannelData framing. Same rule: no throw, every
// rejection counted exactly once.
const stunDrops = new ReasonCounters<StunDropReason>();
const channel = new ChannelDataView();
const attrTypes = [...Object.values(Attr), 0x0018, 0xc001];
let stunParsed = 0;
for (let i = 0; i < count / 4; i++) {
  const w = new StunWriter(int(0x1000), int(4) as StunClass, crypto.getRandomValues(new Uint8Array(12)));
  for (let n = int(6); n > 0; n--) w.bytes(pick(attrTypes), crypto.getRandomValues(new Uint8Array(int(24))));
  if (rnd() < 0.3) w.address(Attr.XOR_PEER_ADDRESS, { address: rnd() < 0.5 ? v4() : v6(), port: int(65536) });
  if (rnd() < 0.3) w.integrity(shortTermKey("pw"), rnd() < 0.5);
  if (rnd() < 0.5) w.fingerprint();
  const m = rnd() < 0.2 ? w.finish() : mutate(w.finish());
  if (rnd() < 0.1) m[0] = 0x40 | int(16); // ChannelData-shaped
  let counted = true;
  try {
    const before = stunDrops.total;
    const msg = readStun(m, m.length, stunDrops);
    if (msg) {
      stunParsed++;
      void checkIntegrity(msg, shortTermKey("pw"));
    }
    counted &&= stunDrops.total === before + (msg ? 0 : 1);
    const mid = stunDrops.total;
    const cd = channel.parse(m, m.length);
    if (cd) stunDrops.count(cd);
    counted &&= stunDrops.total === mid + (cd ? 1 : 0);
  } catch (err) {
    console.error(`stun input ${i} threw: ${(err as Error).stack}\nmessage: ${Buffer.from(m).toString("hex")}`);
    process.exit(1);
  }
  if (!counted) {
    console.error(`stun input ${i} was not counted exactly once\nmessage: ${Buffer.from(m).toString("hex")}`);
    process.exit(1);
  }
}
console.log(`stun: ${Math.floor(count / 4)} inputs, ${stunParsed} parsed; drop reasons: ${Object.entries(stunDrops.snapshot()).sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r}=${n}`).join(" ")}`);
