// The state machine alone, fed synthetic tunnel events on simulated time (problems.test.ts drives
// it with real WirePeers; view.test.ts through the admin's snapshot).
import { expect, test } from "bun:test";
import type { TunnelEvent } from "../tunnel/index.ts";
import { ConnectionStates } from "./connection-state.ts";

const T0 = 1_760_000_000_000;
const remote = { address: "198.51.100.1", port: 40000 };
const answered = (cid: number, session: number): TunnelEvent => ({ type: "handshake_completed", role: "responder", session, remote, cid });
const confirmed = (cid: number, session: number): TunnelEvent => ({ type: "session_confirmed", session, rttMs: 3, cid });

test("a rekey of a working session is not a change of state; only the first confirmation is", () => {
  const s = new ConnectionStates();
  s.added(1, T0);
  s.onEvent(answered(1, 0x100), T0 + 1000);
  expect(s.get(1)).toMatchObject({ state: "awaiting_confirmation", since: T0 + 1000 });
  s.onEvent(confirmed(1, 0x100), T0 + 1010);
  expect(s.get(1)).toMatchObject({ state: "connected", since: T0 + 1010, confirmed: 1 });
  // Two minutes later the client rekeys: the old session carries on until the new one is confirmed.
  s.onEvent(answered(1, 0x101), T0 + 121_000);
  s.onEvent({ type: "handshake_initiated", session: 0x102, attempt: 1, to: remote, cid: 1 }, T0 + 122_000);
  expect(s.get(1)).toMatchObject({ state: "connected", since: T0 + 1010 });
  s.onEvent(confirmed(1, 0x101), T0 + 121_020);
  expect(s.get(1)).toMatchObject({ state: "connected", since: T0 + 1010, confirmed: 2 });
});

test("received traffic keeps a connection connected; silence past REJECT_AFTER_TIME is stale, new traffic connected again", () => {
  const s = new ConnectionStates();
  s.onEvent(answered(2, 0x200), T0);
  s.onEvent(confirmed(2, 0x200), T0);
  let rx = 1;
  for (let t = T0; t <= T0 + 600_000; t += 10_000) s.sample(2, rx++, t);
  expect(s.get(2)!.state).toBe("connected");
  for (let t = T0 + 610_000; t <= T0 + 780_000; t += 10_000) s.sample(2, rx, t);
  expect(s.get(2)!.state).toBe("connected"); // 170 s of quiet: still within REJECT_AFTER_TIME
  s.sample(2, rx, T0 + 791_000);
  expect(s.get(2)).toMatchObject({ state: "stale", since: T0 + 791_000 });
  s.sample(2, rx + 1, T0 + 800_000);
  expect(s.get(2)).toMatchObject({ state: "connected", since: T0 + 800_000 });
});

test("a goodbye returns the connection to idle; erased keys after a live session make it stale", () => {
  const s = new ConnectionStates();
  s.onEvent(answered(3, 0x300), T0);
  s.onEvent(confirmed(3, 0x300), T0);
  s.onEvent({ type: "goodbye_received", cid: 3 }, T0 + 5000);
  expect(s.get(3)).toMatchObject({ state: "idle", since: T0 + 5000 });
  s.onEvent(answered(4, 0x400), T0);
  s.onEvent(confirmed(4, 0x400), T0);
  s.onEvent({ type: "keys_zeroed", cid: 4 }, T0 + 540_000);
  expect(s.get(4)).toMatchObject({ state: "stale", since: T0 + 540_000 });
});

test("the gateway's handshake giving up is failed, and a later answer starts over", () => {
  const s = new ConnectionStates();
  s.onEvent({ type: "handshake_initiated", session: 0x500, attempt: 1, to: remote, cid: 5 }, T0);
  expect(s.get(5)!.state).toBe("handshaking");
  s.onEvent({ type: "handshake_failed", attempts: 19, cid: 5 }, T0 + 90_000);
  expect(s.get(5)).toMatchObject({ state: "failed", since: T0 + 90_000 });
  s.onEvent(answered(5, 0x501), T0 + 100_000);
  expect(s.get(5)!.state).toBe("awaiting_confirmation");
});

test("expired and disabled peers keep their state with its time after they leave the data plane; counts cover every state", () => {
  const s = new ConnectionStates();
  s.added(1, T0);
  s.removed(1, "expired", T0 + 5000);
  expect(s.get(1)).toMatchObject({ state: "expired", since: T0 + 5000 });
  s.added(2, T0);
  s.removed(2, "disabled", T0 + 6000);
  expect(s.get(2)).toMatchObject({ state: "disabled", since: T0 + 6000 });
  s.added(3, T0);
  s.removed(3, "deleted", T0 + 7000);
  expect(s.get(3)).toBeUndefined();
  s.added(4, T0);
  s.onEvent(answered(4, 0x400), T0);
  expect(Object.fromEntries(s.counts())).toEqual({ idle: 0, handshaking: 0, awaiting_confirmation: 1, connected: 0, stale: 0, failed: 0, expired: 0, disabled: 0 });
});
