// The TUN device for real: created by the test, moved into a namespace the test made, then a
// ping from inside that namespace arrives as an IP packet on our fd and our reply reaches ping.
import { afterAll, beforeAll, expect, test, describe } from "bun:test";
import { TunDevice } from "../src/io/tun.ts";
import { icmpEcho, parseEcho } from "./support/icmp.ts";
import { Netns, isRoot, sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "ping"]);
if (skip) console.warn(`skipping TUN device test: ${skip}`);

test.skipIf(isRoot())("without CAP_NET_ADMIN, opening a TUN fails with a clear message", () => {
  expect(() => TunDevice.open("ggdenied0")).toThrow("needs root or CAP_NET_ADMIN");
});

describe.skipIf(skip !== undefined)("TUN device", () => {
  const tag = uniqueTag();
  let ns: Netns;
  let tun: TunDevice;

  beforeAll(() => {
    ns = new Netns(`gg-tun-${tag}`);
    tun = TunDevice.open(`ggtun${tag}`);
    // The fd stays ours while the interface lives in the test's namespace.
    sh(["ip", "link", "set", tun.name, "netns", ns.name]);
    ns.exec(["ip", "addr", "add", "10.98.0.1/24", "dev", tun.name]);
    ns.exec(["ip", "link", "set", tun.name, "mtu", "1420", "up"]);
  });

  afterAll(async () => {
    tun?.close();
    await ns?.destroy();
  });

  test("a ping into the TUN arrives on the fd, and a written reply reaches ping", async () => {
    // Bringing the link up may queue IPv6 neighbour discovery; drain it. Non-blocking: then 0.
    const scratch = new Uint8Array(2048);
    while (tun.read(scratch) > 0);
    expect(tun.read(scratch)).toBe(0);
    const ping = ns.start(["ping", "-c", "1", "-W", "5", "10.98.0.2"]);
    const buf = new Uint8Array(2048);
    const req = await waitFor("echo request on the TUN fd", () => {
      for (let n = tun.read(buf); n > 0; n = tun.read(buf)) {
        const e = parseEcho(buf.slice(0, n));
        if (e?.type === 8) return e;
      }
      return undefined;
    });
    expect(req).toMatchObject({ src: "10.98.0.1", dst: "10.98.0.2" });
    tun.write(icmpEcho({ src: "10.98.0.2", dst: "10.98.0.1", type: 0, id: req.id, seq: req.seq, payload: req.payload }));
    expect(await Promise.race([ping.exited, Bun.sleep(6000).then(() => -1)])).toBe(0);
  });
});
