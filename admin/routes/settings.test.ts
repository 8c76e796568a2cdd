// PUT /api/settings/socket-buffers (#10234): validated, applied through the gateway, audited.
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../../src/store/index.ts";
import { createAdminApp, type AdminGateway } from "../app.ts";

const TOKEN = "env-token-buffers";

function setup() {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-admin-buf-")));
  const calls: { recv: number; send: number }[] = [];
  const gateway: AdminGateway = {
    connections: () => [],
    metrics: () => "",
    peersChanged: () => {},
    nextAddress: () => "10.99.0.9",
    clientConfig: () => undefined,
    // A kernel that grants twice the request, as Linux reports it.
    setSocketBuffers: (w) => (calls.push(w), { recv: 2 * w.recv, send: 2 * w.send }),
  };
  const app = createAdminApp({ gateway, store, envToken: TOKEN });
  const put = (body: unknown, token = TOKEN) =>
    app.request("/api/settings/socket-buffers", { method: "PUT", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { store, calls, put };
}

test("an admin resizes the UDP socket buffers at run time and gets the sizes in effect back, audited", async () => {
  const { store, calls, put } = setup();
  const r = await put({ recv_bytes: 4 << 20, send_bytes: 1 << 20 });
  expect(r.status).toBe(200);
  expect(await r.json()).toEqual({ recv_bytes: 8 << 20, send_bytes: 2 << 20, requested: { recv_bytes: 4 << 20, send_bytes: 1 << 20 } });
  expect(calls).toEqual([{ recv: 4 << 20, send: 1 << 20 }]);
  const audit = store.audit.query({ action: "settings.updated" }, { limit: 10, offset: 0 }).rows;
  expect(audit).toHaveLength(1);
  expect(audit[0]!.actor).toBe("token:env");
  expect(JSON.parse(audit[0]!.after!)).toEqual({ recv_bytes: 4 << 20, send_bytes: 1 << 20, effective_recv_bytes: 8 << 20, effective_send_bytes: 2 << 20 });
});

test("sizes out of bounds, wrong types, unknown fields and bad JSON are 400s naming the field; nothing changes", async () => {
  const { store, calls, put } = setup();
  const cases: [unknown, string][] = [
    [{ recv_bytes: 1024, send_bytes: 1 << 20 }, "recv_bytes: must be at least 65536"],
    [{ recv_bytes: 1 << 20, send_bytes: 2 ** 40 }, "send_bytes: must be at most 268435456"],
    [{ recv_bytes: 1.5e6 + 0.5, send_bytes: 1 << 20 }, "recv_bytes: must be a whole number"],
    [{ recv_bytes: "big", send_bytes: 1 << 20 }, "recv_bytes: must be a number of bytes"],
    [{ send_bytes: 1 << 20 }, "recv_bytes: must be a number of bytes"],
    [{ recv_bytes: 1 << 20, send_bytes: 1 << 20, extra: 1 }, "extra"],
    [null, "body: must be a JSON object"],
    ["{not json", "body: is not JSON"],
  ];
  for (const [body, message] of cases) {
    const r = await put(body);
    expect([JSON.stringify(body), r.status]).toEqual([JSON.stringify(body), 400]);
    expect(((await r.json()) as { message: string }).message).toContain(message);
  }
  expect(calls).toEqual([]);
  expect(store.audit.query({ action: "settings.updated" }, { limit: 10, offset: 0 }).total).toBe(0);
});

test("resizing needs authentication", async () => {
  const { calls, put } = setup();
  expect((await put({ recv_bytes: 1 << 20, send_bytes: 1 << 20 }, "wrong")).status).toBe(401);
  expect(calls).toEqual([]);
});
