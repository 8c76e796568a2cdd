// Turns tunnel events into audit rows: a connection is established once its keys are confirmed —
// the initiator consumed a response, or a responder received the first authenticated packet on
// its session (a response sent proves nothing: a wrong preshared key gets one every 5 s) — and
// closed when it gives up, goes idle long enough for its keys to be erased, or the gateway stops.
import type { Store } from "../store/index.ts";
import type { Tunnel, TunnelEvent } from "../tunnel/index.ts";
import { formatEndpoint } from "../wire/index.ts";

export class ConnectionAudit {
  readonly #live = new Map<number, string>();

  constructor(private readonly store: Store, private readonly tunnel: Tunnel) {}

  onEvent(e: TunnelEvent): void {
    const confirmed = (e.type === "handshake_completed" && e.role === "initiator") || e.type === "session_confirmed";
    if (confirmed && !this.#live.has(e.cid)) {
      const conn = this.tunnel.connection(e.cid);
      const key = conn?.publicKey ?? "";
      const remote = e.type === "handshake_completed" ? e.remote : conn?.peer.endpoint;
      this.#live.set(e.cid, key);
      this.store.audit.record({ actor: "gateway", action: "connection.established", cid: e.cid, subject: key, reason: remote ? `from ${formatEndpoint(remote)}` : undefined });
    } else if ((e.type === "keys_zeroed" || e.type === "handshake_failed" || e.type === "goodbye_received") && this.#live.has(e.cid)) {
      this.#close(e.cid, e.type === "keys_zeroed" ? "idle: session keys erased" : e.type === "goodbye_received" ? "peer said goodbye" : "handshake gave up");
    }
  }

  #close(cid: number, reason: string): void {
    const key = this.#live.get(cid);
    this.#live.delete(cid);
    this.store.audit.record({ actor: "gateway", action: "connection.closed", cid, subject: key, reason });
  }

  /** Connections whose peer left the data plane (deleted, disabled, expired). */
  sweep(): void {
    for (const cid of [...this.#live.keys()]) if (!this.tunnel.connection(cid)) this.#close(cid, "peer removed");
  }

  shutdown(): void {
    for (const cid of [...this.#live.keys()]) this.#close(cid, "gateway shutdown");
  }
}
