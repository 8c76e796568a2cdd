// ICE and TURN events as log lines: with the connection's cid, so they land in its Timeline on the
// admin's connection page (admin/views/connections.ts picks them by message), next to handshakes.
// Checks in flight are debug (a dozen per pair); what a person reads — candidates, a pair that
// works or failed, the nominated pair, the connection's ICE state, relay allocations — is info.
import type { TargetLogger } from "../telemetry/log.ts";
import type { IceNodeEvent } from "./ice-connections.ts";

const ep = (c: { address: string; port: number }) => (c.address.includes(":") ? `[${c.address}]:${c.port}` : `${c.address}:${c.port}`);

export function logIceEvent(ice: TargetLogger, turn: TargetLogger, e: IceNodeEvent): void {
  switch (e.type) {
    case "ice": {
      const ev = e.event;
      const cid = e.cid;
      if (ev.kind === "candidate") {
        ice.info(`ice candidate ${ev.action}`, { cid, side: ev.side, type: ev.candidate.type, address: ep(ev.candidate), priority: ev.candidate.priority, relay: ev.candidate.relay });
      } else if (ev.kind === "candidate_refused") {
        ice.warn("ice candidate refused", { cid, candidate: ev.text, reason: ev.reason });
      } else if (ev.kind === "pair_state") {
        const fields = { cid, pair: `${ev.pair.local.type} ${ep(ev.pair.local)} -> ${ev.pair.remote.type} ${ep(ev.pair.remote)}`, from: ev.from };
        if (ev.to === "succeeded" || ev.to === "failed") ice.info(`ice pair ${ev.to}`, fields);
        else if (ice.enabled("debug")) ice.debug(`ice pair ${ev.to}`, fields);
      } else if (ev.kind === "nominated") {
        ice.info("ice pair nominated", { cid, local: `${ev.pair.local.type} ${ep(ev.pair.local)}`, remote: `${ev.pair.remote.type} ${ep(ev.pair.remote)}`, relayed: ev.pair.local.type === "relay" });
      } else if (ev.kind === "state") {
        const fields = { cid, state: ev.state, reason: ev.reason };
        if (ev.state === "failed" || ev.state === "disconnected") ice.warn(`ice connection ${ev.state}`, fields);
        else ice.info(`ice connection ${ev.state}`, fields);
      }
      return;
    }
    case "relay": {
      const ev = e.event;
      const relay = e.relayId;
      if (ev.type === "allocated") turn.info("relay allocated", { relay, relayed: ev.relays.map(ep).join(" "), srflx: ev.srflx ? ep(ev.srflx) : undefined, lifetime_s: ev.lifetimeS });
      else if (ev.type === "failed") turn.warn("relay allocation failed", { relay, reason: ev.reason, detail: ev.detail });
      else if (ev.type === "candidates_invalidated") turn.info("relay candidates invalidated", { relay, relayed: ev.relays.map(ep).join(" "), reason: ev.reason });
      else if (ev.type === "channel_failed") turn.warn("relay channel bind failed", { relay, peer: ep(ev.peer), detail: ev.detail });
      else if (turn.enabled("debug") && ev.type !== "data") turn.debug(`relay ${ev.type}`, { relay });
      return;
    }
    case "local_candidates":
    case "invalidated_candidates":
      if (ice.enabled("debug")) ice.debug(e.type === "local_candidates" ? "local candidates to signal" : "local candidates to withdraw", { client: e.clientId, candidates: e.candidates.join(" | ") });
      return;
    case "ice_path":
      return; // logged where the route is applied (ice-connections.ts), with the client id
  }
}
