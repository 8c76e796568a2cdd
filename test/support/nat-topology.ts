// Two hosts behind MASQUERADE NATs, as a Firezone client and gateway at home and at a site, in
// namespaces the test creates (`cleanups` gets their removal):
//
//   client 192.168.7.2 → NAT 203.0.113.1 → "internet" 203.0.113.254 / 198.51.100.254 ← NAT 198.51.100.1 ← gateway 10.7.0.2
//
// A STUN or TURN server in `inet` on 203.0.113.254 gives each side its srflx address; only the
// srflx path works between the two hosts.
import { link, Netns, uniqueTag } from "./netns.ts";

export interface NatTopology {
  cl: Netns;
  clnat: Netns;
  inet: Netns;
  gwnat: Netns;
  gw: Netns;
}

/** `prefix`: up to 4 letters naming the test in the namespaces' names. */
export function natTopology(prefix: string, cleanups: (() => Promise<void> | void)[]): NatTopology {
  const tag = uniqueTag();
  const [cl, clnat, inet, gwnat, gw] = ["cl", "cn", "in", "gn", "gw"].map((n) => new Netns(`${prefix}${n}${tag}`)) as [Netns, Netns, Netns, Netns, Netns];
  cleanups.push(() => cl.destroy(), () => clnat.destroy(), () => inet.destroy(), () => gwnat.destroy(), () => gw.destroy());
  link(cl, "lan0", "192.168.7.2/24", clnat, "lan0", "192.168.7.1/24");
  link(clnat, "wan0", "203.0.113.1/24", inet, "a0", "203.0.113.254/24");
  link(gwnat, "wan0", "198.51.100.1/24", inet, "b0", "198.51.100.254/24");
  link(gw, "lan0", "10.7.0.2/24", gwnat, "lan0", "10.7.0.1/24");
  cl.exec(["ip", "route", "add", "default", "via", "192.168.7.1"]);
  gw.exec(["ip", "route", "add", "default", "via", "10.7.0.1"]);
  clnat.exec(["ip", "route", "add", "default", "via", "203.0.113.254"]);
  gwnat.exec(["ip", "route", "add", "default", "via", "198.51.100.254"]);
  // Checks to the other side's private (host) addresses vanish on the internet, silently. With no
  // route here they drew ICMP "network unreachable" instead, and Bun's UDP socket then fails the
  // *next* send without throwing (its error callback gets `undefined`; 12 of 20 datagrams lost in a
  // three-namespace check): checks and answers went missing at random and waited for a retransmit.
  inet.exec(["ip", "route", "add", "blackhole", "default"]);
  for (const ns of [clnat, inet, gwnat]) ns.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  for (const nat of [clnat, gwnat]) {
    nat.exec(["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE"]);
    // Unsolicited datagrams die silently, as at a home router. Without this, the first check that
    // reaches a NAT before its own side punched the hole leaves a conntrack entry for that 4-tuple
    // (and draws an ICMP error); the NAT then maps the outgoing hole to another port, and both NATs
    // end up behaving as symmetric ones. Dropped in INPUT, the entry is never confirmed.
    nat.exec(["iptables", "-A", "INPUT", "-i", "wan0", "-p", "udp", "-j", "DROP"]);
  }
  return { cl, clnat, inet, gwnat, gw };
}
