// Runtime settings through the JSON API. Today: the UDP sockets' buffer sizes (Firezone #10234),
// so an operator can give a busy gateway more room without a restart. Validated, applied through
// the gateway, audited with what was asked and what the kernel granted.
import { Hono } from "hono";
import { z } from "zod";
import { SOCKET_BUFFER_MAX, SOCKET_BUFFER_MIN } from "../../src/io/udp.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { jsonObject, parseStrict } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import { principal } from "./common.ts";

/** Sizes in bytes, within the bounds io/udp.ts names. */
const bufferBytes = z.number({ error: "must be a number of bytes" }).int("must be a whole number of bytes")
  .min(SOCKET_BUFFER_MIN, `must be at least ${SOCKET_BUFFER_MIN} (64 KiB)`).max(SOCKET_BUFFER_MAX, `must be at most ${SOCKET_BUFFER_MAX} (256 MiB)`);
const SocketBuffersInput = z.strictObject({ recv_bytes: bufferBytes, send_bytes: bufferBytes });

export function settingsRoutes(opts: AdminOptions) {
  const { gateway, store } = opts;
  return new Hono<AdminEnv>().put("/api/settings/socket-buffers", async (c) => {
    const body = parseStrict(SocketBuffersInput, await jsonObject(c));
    if (!gateway.setSocketBuffers) return c.json({ error: "not_supported", message: "this gateway cannot resize its sockets" }, 501);
    const wanted = { recv: body.recv_bytes, send: body.send_bytes };
    const now = gateway.setSocketBuffers(wanted);
    store?.audit.record({ actor: principal(c).actor, action: "settings.updated", subject: "socket-buffers", after: { recv_bytes: wanted.recv, send_bytes: wanted.send, effective_recv_bytes: now.recv, effective_send_bytes: now.send } });
    return c.json({ recv_bytes: now.recv, send_bytes: now.send, requested: body });
  });
}
