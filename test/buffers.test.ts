// Socket buffers and the TUN queue of a real gateway in its own namespace: the sizes in effect
// are reported (startup line, metrics), resizable through the admin API, FIREZONE_NO_INC_BUF is a
// yes/no flag, and the TUN's tx queue is raised.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ADMIN_TOKEN, Topology } from "./support/topology.ts";
import { skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip"]);

describe.skipIf(skip !== undefined)("UDP buffers and TUN queue", () => {
  let topo: Topology;
  const lines = () => topo.gatewayLog.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const upLine = () => lines().find((l) => l.msg === "gateway up")!;
  /** What a fresh socket in the gateway's namespace gets for a request: the independent reference. */
  const granted = (bytes: number) => JSON.parse(topo.gw.exec(["bun", "-e",
    `import d from "node:dgram"; const s = d.createSocket("udp4"); s.bind(0, "127.0.0.1", () => { s.setRecvBufferSize(${bytes}); s.setSendBufferSize(${bytes}); ` +
    `process.stdout.write(JSON.stringify({ recv: s.getRecvBufferSize(), send: s.getSendBufferSize() })); s.close(); });`])) as { recv: number; send: number };

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 0);
    // "0" means no: the buffers must still be raised (it used to count as set because it was present).
    await topo.startGateway({ FIREZONE_NO_INC_BUF: "0" }, 0);
  }, 60_000);
  afterAll(() => topo?.destroy());

  test("the TUN's tx queue is raised to 10000 packets", () => {
    const [link] = JSON.parse(topo.gw.exec(["ip", "-j", "link", "show", "dev", `ggt${topo.tag}`]));
    expect(link.txqlen).toBe(10000);
  });

  test("FIREZONE_NO_INC_BUF=0 still gets 8 MiB buffers, even where rmem_max is lower; the sizes in effect are in the startup line and the metrics", () => {
    // Linux reports twice the granted size: 8 MiB for real, whatever the namespace's caps.
    const want = { recv: 2 * (8 << 20), send: 2 * (8 << 20) };
    expect({ recv: upLine().udp_recv_buffer, send: upLine().udp_send_buffer }).toEqual(want);
    expect(topo.metric("glassgate_udp_socket_buffer_bytes", '{direction="recv"}')).toBe(want.recv);
    expect(topo.metric("glassgate_udp_socket_buffer_bytes", '{direction="send"}')).toBe(want.send);
    // What happened to the kernel's caps is said, whichever way it went (namespaces often may not write them).
    const limits = lines().filter((l) => String(l.msg).startsWith("socket buffer limit"));
    expect(limits.map((l) => l.limit).sort()).toEqual(["net.core.rmem_max", "net.core.wmem_max"]);
    const rmemMax = Number(topo.gw.exec(["cat", "/proc/sys/net/core/rmem_max"]).trim());
    const r = limits.find((l) => l.limit === "net.core.rmem_max")!;
    expect(r.after).toBe(rmemMax);
    expect(["raised", "enough", "not_permitted"]).toContain(r.result as string);
  });

  test("an admin resizes the buffers at run time through the API; metrics follow", async () => {
    const script = `const r = await fetch("http://127.0.0.1:8080/api/settings/socket-buffers", { method: "PUT", headers: { authorization: "Bearer ${ADMIN_TOKEN}", "content-type": "application/json" }, body: JSON.stringify({ recv_bytes: 262144, send_bytes: 131072 }) });` +
      `process.stdout.write(JSON.stringify({ status: r.status, body: await r.json() }));`;
    const res = JSON.parse(topo.gw.exec(["bun", "-e", script]));
    expect(res.status).toBe(200);
    const want = { recv: granted(262144).recv, send: granted(131072).send };
    expect({ recv: res.body.recv_bytes, send: res.body.send_bytes }).toEqual(want);
    expect(topo.metric("glassgate_udp_socket_buffer_bytes", '{direction="recv"}')).toBe(want.recv);
    expect(topo.metric("glassgate_udp_socket_buffer_bytes", '{direction="send"}')).toBe(want.send);
    await waitFor("the resize log line", () => topo.gatewayLog.includes('"msg":"UDP socket buffers resized"'));
  });

  test("FIREZONE_NO_INC_BUF=yes keeps the kernel's defaults and leaves its limits alone", async () => {
    await topo.stopGateway();
    topo.gatewayLog = "";
    await topo.startGateway({ FIREZONE_NO_INC_BUF: "yes" }, 0);
    const defaults = JSON.parse(topo.gw.exec(["bun", "-e",
      `import d from "node:dgram"; const s = d.createSocket("udp4"); s.bind(0, "127.0.0.1", () => { process.stdout.write(JSON.stringify({ recv: s.getRecvBufferSize(), send: s.getSendBufferSize() })); s.close(); });`]));
    expect({ recv: upLine().udp_recv_buffer, send: upLine().udp_send_buffer }).toEqual(defaults);
    expect(lines().filter((l) => String(l.msg).startsWith("socket buffer limit"))).toEqual([]);
  }, 60_000);
});
