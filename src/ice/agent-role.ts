// Which side of a connection nominates (RFC 8445 §6.1.1, §7.3.1.1), kept apart from the agent's
// pairing and timers. A gateway is always controlled: Firezone clients nominate, and a gateway
// that answered a conflict by taking over would fight every client. The controlling role is what
// a client runs (tools/headless-client); it nominates the way str0m's controlling agent does with
// one component: "regular nomination" — once a check on a pair succeeds, a second check on it
// carries USE-CANDIDATE, and the pair carries data once that one is answered too.
import type { BindingMessage } from "./agent-messages.ts";
import { byPriority, pairPriority, type Pair } from "./agent-pairs.ts";

export type IceRole = "controlling" | "controlled";

/**
 * What a request's role attribute means for an agent in `role` (RFC 8445 §7.3.1.1):
 * - `ok`: no conflict;
 * - `conflict`: answer 487 Role Conflict and keep our role;
 * - `switch`: take the other role, then process the request.
 * A `fixed` agent (the gateway's) never switches, and insists the peer says ICE-CONTROLLING: one
 * that does not is told 487, as the gateway always has.
 */
export function roleVerdict(role: IceRole, fixed: boolean, ourTieBreaker: bigint, msg: Pick<BindingMessage, "iceControlling" | "iceControlled">): "ok" | "conflict" | "switch" {
  if (role === "controlled") {
    if (msg.iceControlling !== undefined) return "ok";
    if (fixed) return "conflict";
    if (msg.iceControlled === undefined) return "ok";
    return ourTieBreaker >= msg.iceControlled ? "switch" : "conflict";
  }
  if (msg.iceControlling === undefined) return "ok";
  return ourTieBreaker >= msg.iceControlling ? "conflict" : "switch";
}

/** RFC 8445 §6.1.2.3: G is the controlling agent's candidate priority, D the controlled one's. */
export function pairPriorityFor(role: IceRole, localPriority: number, remotePriority: number): bigint {
  return role === "controlling" ? pairPriority(localPriority, remotePriority) : pairPriority(remotePriority, localPriority);
}

export function otherRole(role: IceRole): IceRole {
  return role === "controlling" ? "controlled" : "controlling";
}

/**
 * Controlling, regular nomination: which pair to nominate now, given the pairs in priority order.
 * The best pair that works, unless a nomination of one at least as good is done or under way; a
 * better pair that succeeds later is nominated too (`replaces`: the worse nomination still pending,
 * which stops asking), and the peer moves to it — the controlled side carries data on its best
 * nominated pair (RFC 8445 §8.1.1).
 */
export function nominationChoice(pairs: readonly Pair[]): { pair: Pair; replaces?: Pair } | undefined {
  const best = pairs.find((p) => p.state === "succeeded");
  if (!best || best.nominated || best.nominate) return undefined;
  const pending = pairs.find((p) => p.nominate || (p.nominated && p.state === "succeeded"));
  if (pending && byPriority(pending, best) <= 0) return undefined;
  return pending?.nominate ? { pair: best, replaces: pending } : { pair: best };
}
