// Optimistic remote candidates, as snownet adds them: many NATs keep the port a host socket had
// (endpoint-independent mapping with port preservation), so the peer's srflx IP with each of its
// host ports is worth a check before — or instead of — the srflx port it learnt from STUN. IPv4
// only (IPv6 rarely has a NAT to guess about), and only a few: each guess costs checks.
import { candidatePriority, isIPv4, type Candidate } from "./candidate.ts";
import type { RemoteCandidate } from "./agent-pairs.ts";

/** The guesses not yet among `remotes`, so that at most `max` exist in all. */
export function optimisticCandidates(remotes: readonly RemoteCandidate[], max: number): Candidate[] {
  const out: Candidate[] = [];
  let count = remotes.filter((r) => r.optimistic).length;
  const taken = (address: string, port: number) =>
    remotes.some((r) => r.candidate.address === address && r.candidate.port === port) || out.some((c) => c.address === address && c.port === port);
  for (const srflx of remotes) {
    if (srflx.candidate.type !== "srflx" || srflx.optimistic || !isIPv4(srflx.candidate.address)) continue;
    for (const host of remotes) {
      if (count >= max) return out;
      if (host.candidate.type !== "host" || !isIPv4(host.candidate.address)) continue;
      const address = srflx.candidate.address;
      const port = host.candidate.port;
      if (taken(address, port)) continue;
      out.push({
        foundation: srflx.candidate.foundation,
        component: 1,
        transport: "udp",
        priority: candidatePriority("srflx", 0), // below every signalled srflx: a guess goes last
        address,
        port,
        type: "srflx",
        relatedAddress: host.candidate.address,
        relatedPort: port,
      });
      count++;
    }
  }
  return out;
}
