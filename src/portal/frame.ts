// Phoenix's v1 JSON frame as Firezone speaks it: one object `{"topic","event","payload","ref"}` per
// WebSocket text message. Not the v2 array `[join_ref, ref, topic, event, payload]` that phoenix.js
// sends by default: Firezone connects without `vsn`, so the portal answers with its v1 serializer,
// and there is no `join_ref` (`phoenix-channel/src/lib.rs` PhoenixMessage).
import { z } from "zod";

/** A ref as the server echoes it: Phoenix returns whatever the client sent (Firezone sends numbers;
 * phoenix.js strings), and `null` on pushes the server starts itself. */
export type InboundRef = number | string | null;

export interface Frame {
  topic: string;
  event: string;
  payload: unknown;
  ref: InboundRef;
}

const FrameSchema = z.object({
  topic: z.string(),
  event: z.string(),
  payload: z.unknown(),
  ref: z.union([z.number().int().nonnegative(), z.string(), z.null()]).optional(),
});

/** What could be read of a frame that is not one: enough to name it in a log line. */
export interface FrameFault {
  topic: string | null;
  event: string | null;
  ref: InboundRef;
  issue: string;
}

/** Our outbound frame: refs are numbers counting up from 0 per connection. */
export function encodeFrame(topic: string, event: string, payload: unknown, ref: number | null): string {
  return JSON.stringify({ topic, event, payload, ref });
}

export function decodeFrame(text: string): { ok: true; frame: Frame } | { ok: false; fault: FrameFault } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, fault: { topic: null, event: null, ref: null, issue: `not JSON: ${(err as Error).message}` } };
  }
  const parsed = FrameSchema.safeParse(raw);
  if (!parsed.success) {
    const o = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
    return {
      ok: false,
      fault: {
        topic: typeof o.topic === "string" ? o.topic : null,
        event: typeof o.event === "string" ? o.event : null,
        ref: typeof o.ref === "number" || typeof o.ref === "string" ? o.ref : null,
        issue: describeIssue(parsed.error),
      },
    };
  }
  const f = parsed.data;
  return { ok: true, frame: { topic: f.topic, event: f.event, payload: f.payload, ref: f.ref ?? null } };
}

/** A ref as the number we sent, if it is one ("12" and 12 are the same request). */
export function refNumber(ref: InboundRef): number | null {
  if (typeof ref === "number") return ref;
  if (typeof ref === "string" && /^\d{1,15}$/.test(ref)) return Number(ref);
  return null;
}

/** The first zod issue as `path: message`, the form every malformed-message report uses. */
export function describeIssue(error: z.ZodError): string {
  const i = error.issues[0];
  if (!i) return "invalid";
  return `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`;
}

/** A `phx_reply` payload. */
export const ReplySchema = z.object({
  status: z.enum(["ok", "error"]),
  response: z.unknown(),
});
