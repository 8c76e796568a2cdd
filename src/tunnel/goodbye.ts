// Firezone's "goodbye": a control message sent inside the tunnel when a gateway shuts down, so
// clients fail over at once instead of waiting out their timeouts. It is shaped as an IPv6 packet
// that no host would ever send: src = dst = ::, next header 0xFF, hop limit 0, 8-byte payload
// whose first byte is the event type (2 = goodbye). Source: firezone ip-packet fz_p2p_control.rs.
// Stock WireGuard clients drop it (its source is in nobody's AllowedIPs), so it is safe for all.

export const GOODBYE_EVENT = 2;

export function goodbyePacket(): Uint8Array {
  const p = new Uint8Array(48);
  p[0] = 0x60; // version 6
  p[5] = 8; // payload length
  p[6] = 0xff; // next header: reserved, never a real protocol
  p[7] = 0; // hop limit 0: never forwarded
  p[40] = GOODBYE_EVENT;
  return p;
}

/** Is this decrypted inner packet a Firezone p2p control packet, and which event? */
export function controlEventOf(packet: Uint8Array): number | undefined {
  if (packet.length !== 48 || packet[0] !== 0x60 || packet[6] !== 0xff || packet[7] !== 0) return undefined;
  for (let i = 8; i < 40; i++) if (packet[i] !== 0) return undefined;
  return packet[40];
}
