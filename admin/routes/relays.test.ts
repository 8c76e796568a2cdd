// The Relays page and GET /api/relays; the Connections page's path column.
import { expect, test } from "bun:test";
import type { RelayView } from "../../src/node/relays.ts";
import { ENV_TOKEN, RELAY, login, setup } from "../testing.ts";

const bearer = { authorization: `Bearer ${ENV_TOKEN}` };

test("the Relays page lists allocations with their lifetimes and channels; /api/relays has the same in JSON", async () => {
  const { app, store } = setup({ relays: () => [RELAY] });
  const auth = await login(app, store);
  const text = await (await app.request("/relays", { headers: { cookie: auth.cookie, accept: "text/html" } })).text();
  expect(text).toContain("relay-eu-1");
  expect(text).toContain("203.0.113.50:50012");
  expect(text).toContain("9 min");
  expect(text).toContain("0x4001");
  expect(text).toContain("auth 1");
  const api = (await (await app.request("/api/relays", { headers: bearer })).json()) as { relays: RelayView[] };
  expect(api.relays).toEqual([RELAY]);
});

test("a standalone gateway's Relays page says there are none and why", async () => {
  const { app, store } = setup();
  const auth = await login(app, store);
  const text = await (await app.request("/relays", { headers: { cookie: auth.cookie, accept: "text/html" } })).text();
  expect(text).toContain('data-testid="relays-none"');
});

test("the Connections list and a connection's page show an ICE client's path", async () => {
  const { app, store, conns } = setup();
  const conn = conns[0]!;
  conn.path = "relay via 203.0.113.50:3478";
  const auth = await login(app, store);
  const list = await (await app.request("/connections", { headers: { cookie: auth.cookie, accept: "text/html" } })).text();
  expect(list).toContain("relay via 203.0.113.50:3478");
  const one = await (await app.request(`/connections/${conn.cid}`, { headers: { cookie: auth.cookie, accept: "text/html" } })).text();
  expect(one).toContain('data-testid="path">relay via 203.0.113.50:3478');
});
