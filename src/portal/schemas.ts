// The shapes shared by both channels (gateway and client): ids, keys, addresses, ICE credentials,
// relays, times. Firezone's definitions: `connlib/tunnel/src/messages.rs` at 8378819621c7.
import { isIPv4, isIPv6 } from "node:net";
import { z } from "zod";
import { parseResource, type Resource } from "../gateway/index.ts";

/**
 * A portal id (client, gateway, resource, relay, site): Firezone sends UUIDs. It ends up in log
 * fields (cid, rid) and admin URLs, so it is held to the same plain-word form as resource ids.
 */
export const PortalId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "is not an id (1–64 of A-Z a-z 0-9 _ . -)");

/** A WireGuard key (public or preshared): base64 of 32 bytes, as `wg` prints it. */
export const Key = z.string().regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, "is not a base64 32-byte key");

export const Ipv4 = z.string().refine((s) => isIPv4(s), "is not an IPv4 address");
export const Ipv6 = z.string().refine((s) => isIPv6(s), "is not an IPv6 address");

/** Unix seconds (chrono `ts_seconds`). */
export const UnixSeconds = z.number().int().nonnegative();

export const IceCredentials = z.object({ username: z.string().min(1), password: z.string().min(1) });

/** An SDP candidate line ("candidate:… typ host"): parsed by the ICE agent, which skips faulty ones
 * one by one as Firezone does (VecSkipError) instead of dropping the whole message. */
export const Candidate = z.string().max(512);

/** "ip:port" or "[ipv6]:port", as Rust's SocketAddr serialises. */
export const SocketAddr = z.string().refine((s) => {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(s);
  if (!m || Number(m[3]) > 65535) return false;
  return m[1] !== undefined ? isIPv6(m[1]) : isIPv4(m[2]!);
}, "is not an ip:port address");

export const Relay = z.discriminatedUnion("type", [
  z.object({ type: z.literal("turn"), id: PortalId, addr: SocketAddr, username: z.string(), password: z.string(), expires_at: UnixSeconds }),
  z.object({ type: z.literal("stun"), id: PortalId, addr: SocketAddr }),
]);
export type Relay = z.infer<typeof Relay>;

export const RelaysPresence = z.object({ disconnected_ids: z.array(PortalId), connected: z.array(Relay) });

export const Interface = z.object({
  ipv4: Ipv4,
  ipv6: Ipv6,
  upstream_dns: z.array(z.object({ protocol: z.literal("ip_port"), address: SocketAddr })).default([]),
  search_domain: z.string().nullish(),
});

/**
 * A resource in Firezone's wire shape, checked and turned into the gateway's own `Resource` by the
 * same parser the config file and the admin use, so a portal resource that validates here is one
 * the gateway can serve.
 */
export const PortalResource = z.unknown().transform((raw, ctx): Resource => {
  try {
    return parseResource(raw);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});
