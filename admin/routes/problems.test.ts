// GET /api/problems and what the connection page says about problems and lost connections.
import { expect, test } from "bun:test";
import type { ProblemView } from "../types.ts";
import { ENV_TOKEN, login, setup } from "../testing.ts";

const bearer = { authorization: `Bearer ${ENV_TOKEN}` };
const problem = (kind: ProblemView["kind"], cid: number | null): ProblemView => ({
  kind, cid, public_key: cid === null ? null : "KEY=", source: "198.51.100.9", title: `${kind} title`, likely_cause: "a <cause>", fix: "the fix",
  since: "2026-11-29T10:00:00.000Z", last_seen: "2026-11-29T10:01:00.000Z", count: 4,
});

test("GET /api/problems lists every problem in snake_case, ?cid= narrows to one connection, a bad cid is a 400 naming it", async () => {
  const list = [problem("psk_mismatch", 3428714), problem("wrong_gateway_key", null)];
  const { app } = setup({ problems: () => list });
  const all = await app.request("/api/problems", { headers: bearer });
  expect(all.status).toBe(200);
  expect(((await all.json()) as { problems: ProblemView[] }).problems).toEqual(list);
  const one = await app.request("/api/problems?cid=3428714", { headers: bearer });
  expect(((await one.json()) as { problems: ProblemView[] }).problems.map((p) => p.kind)).toEqual(["psk_mismatch"]);
  const bad = await app.request("/api/problems?cid=x1", { headers: bearer });
  expect(bad.status).toBe(400);
  expect(await bad.text()).toContain("cid");
  expect((await app.request("/api/problems")).status).toBe(401);
});

test("the connection page shows its own problems as banners (escaped), not other connections'", async () => {
  const { app, store } = setup({ problems: () => [problem("psk_mismatch", 3428714), problem("allowed_ips", 99)] });
  const auth = await login(app, store);
  const r = await app.request("/connections/3428714", { headers: { cookie: auth.cookie, accept: "text/html" } });
  const text = await r.text();
  expect(text).toContain('data-problem="psk_mismatch"');
  expect(text).not.toContain('data-problem="allowed_ips"');
  expect(text).toContain("a &lt;cause&gt;");
  // Times as everywhere in the admin (UTC, with a <time> the browser adds local time to), not raw ISO.
  expect(text).toContain('Seen 4×, first <time datetime="2026-11-29T10:00:00.000Z">2026-11-29 10:00:00 UTC</time>');
});

test("an open connection page whose peer expired says so, and since when (its live part stops there)", async () => {
  const { app, store } = setup({ connectionState: (cid) => (cid === 77 ? { state: "expired", since: "2026-11-29T09:30:00.000Z" } : undefined) });
  const auth = await login(app, store);
  const live = await app.request("/connections/77/live", { headers: { cookie: auth.cookie, accept: "text/html" } });
  const text = await live.text();
  expect(text).toContain('data-state="expired"');
  expect(text).toContain("<b>expired</b>");
  expect(text).toContain("2026-11-29 09:30");
  // A cid the state machine never knew keeps the general wording.
  const other = await app.request("/connections/78/live", { headers: { cookie: auth.cookie, accept: "text/html" } });
  expect(await other.text()).toContain('data-state="gone"');
});
