// Our v1 object frames against the npm `phoenix` client's serializer. Phoenix v2 (phoenix.js's
// default) writes arrays [join_ref, ref, topic, event, payload]; Firezone and this client write
// v1 objects. What overlaps — the fields, their meaning, the control events and the heartbeat —
// must agree, so a frame means the same thing in either form.
import { describe, expect, test } from "bun:test";
import { Serializer, type PhoenixMessage } from "phoenix";
import { decodeFrame, encodeFrame } from "./frame.ts";
import { PHOENIX_TOPIC } from "./constants.ts";

const phxEncode = (m: PhoenixMessage) => {
  let out = "";
  Serializer.encode(m, (s) => (out = s));
  return out;
};
const phxDecode = (s: string) => {
  let out: PhoenixMessage | undefined;
  Serializer.decode(s, (m) => (out = m));
  return out!;
};

/** The v2 array of a v1 object frame: the one mapping between the two forms. */
const toV2 = (text: string) => {
  const o = JSON.parse(text);
  return JSON.stringify([null, o.ref === null ? null : String(o.ref), o.topic, o.event, o.payload]);
};

describe("frames against phoenix.js's serializer", () => {
  test("our join, heartbeat and push mean the same to Phoenix once mapped to its array form", () => {
    for (const [topic, event, payload, ref] of [
      ["gateway", "phx_join", null, 0],
      [PHOENIX_TOPIC, "heartbeat", {}, 1],
      ["gateway", "flow_authorized", { ref: "abc" }, 2],
    ] as const) {
      const ours = encodeFrame(topic, event, payload, ref);
      expect(Object.keys(JSON.parse(ours))).toEqual(["topic", "event", "payload", "ref"]);
      const theirs = phxDecode(toV2(ours));
      expect(theirs).toEqual({ join_ref: null, ref: String(ref), topic, event, payload });
      // and Phoenix's own encoding of that message is exactly the array we mapped to — except for
      // the join's `null` payload, which phoenix.js cannot encode (it reads payload.constructor and
      // always joins with `{}`): Firezone's `null` is one place where the two clients differ.
      if (payload === null) expect(() => phxEncode(theirs)).toThrow();
      else expect(phxEncode(theirs)).toBe(toV2(ours));
    }
  });

  test("Phoenix's messages (a reply, a server push) decode to the same fields from the object form", () => {
    const reply: PhoenixMessage = { join_ref: null, ref: "0", topic: "gateway", event: "phx_reply", payload: { status: "ok", response: {} } };
    const push: PhoenixMessage = { join_ref: null, ref: null, topic: "gateway", event: "init", payload: { a: 1 } };
    for (const m of [reply, push]) {
      const v2 = phxDecode(phxEncode(m));
      const v1 = decodeFrame(JSON.stringify({ topic: m.topic, event: m.event, payload: m.payload, ref: m.ref }));
      expect(v1.ok).toBe(true);
      if (v1.ok) expect({ topic: v1.frame.topic, event: v1.frame.event, payload: v1.frame.payload, ref: v1.frame.ref }).toEqual({ topic: v2.topic, event: v2.event, payload: v2.payload, ref: v2.ref });
    }
  });

  test("a frame is not a v2 array: decodeFrame rejects one and names why", () => {
    const r = decodeFrame(phxEncode({ join_ref: "1", ref: "1", topic: "gateway", event: "phx_join", payload: {} }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.fault.issue).toContain("(root)");
  });

  test("the control event names are phoenix.js's", async () => {
    // constants.js is not exported from the package root; its values are part of the protocol.
    const src = await Bun.file(require.resolve("phoenix/package.json").replace("package.json", "assets/js/phoenix/constants.js")).text();
    for (const e of ["phx_close", "phx_error", "phx_join", "phx_reply"]) expect(src).toContain(`"${e}"`);
    const socketSrc = await Bun.file(require.resolve("phoenix/package.json").replace("package.json", "assets/js/phoenix/socket.js")).text();
    expect(socketSrc).toContain(`topic: "${PHOENIX_TOPIC}", event: "heartbeat", payload: {}`);
  });
});
