// The gateway image, built from our Dockerfile and run for real by Debian's podman with the options
// docker-compose.yml gives the gateway service; plus the image run bare, as `docker run -p` would.
//
// What this machine kind needs (learnt by trying, as root, podman 4.3 from bookworm):
// - No registry: the base image `oven/bun:1-debian` is a stand-in with what that image is, Debian
//   bookworm plus the bun binary: `debootstrap --variant=minbase` from the Debian mirror apt uses
//   here, this machine's bun at /usr/local/bin/bun, `podman import`. The machine's CA bundle goes in
//   too (NODE_EXTRA_CA_CERTS), as the machine reaches the npm registry through a TLS-inspecting
//   proxy and `bun install` in the build must trust what the machine trusts. Kept between runs
//   (`podman image exists`); a real oven/bun image, where there is one, is used as it is.
// - containers.conf (CONTAINERS_CONF, in the test's temp dir): podman's default rlimits (nofile and
//   nproc) exceed what the VM allows, so 1024; cgroups v1 with hugetlb on the v2 hierarchy is a
//   "hybrid mode" crun refuses, so the runtime is runc; cgroupfs and file events without systemd;
//   the CNI network backend (what was tried here; netavark would need aardvark-dns too).
// - Networking: podman's default CNI bridge with port mapping (iptables DNAT) works; the test makes
//   its own bridge network, as compose makes one per project, and publishes the ports on addresses
//   it owns: the admin on 127.0.0.1 like the compose file, WireGuard's UDP on its veth's host side.
// - This VM's /dev/net/tun is 0600 (udev makes it 0666 on a usual host), and a non-root container
//   user cannot open that; the test passes a 0666 node of the same device (10,200) instead.
//
// Everything is named gg-ct-<tag>…, removed by name in afterAll (the base image stays, as cache).
// Time on this 2-core VM (shared): about 3 min from nothing (debootstrap ~1 min, build ~1 min), ~1 min
// with the base image kept.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "bun";
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { Netns, missingCommands, sh, skipReason, uniqueTag, vethInto, waitFor } from "./support/netns.ts";

const ROOT = join(import.meta.dir, "..");
const BASE_IMAGE = "oven/bun:1-debian";
const GATEWAY_UID = 10001;
const CAP_NET_ADMIN = 12;

const skip = skipReason(["podman", "debootstrap", "ip", "wg", "wireguard-go", "ping"]) ??
  (missingCommands(["runc"]).length ? "missing commands: runc (.ci/run installs it; crun refuses this VM's hybrid cgroups)" : undefined);
if (skip) console.warn(`skipping the container image test: ${skip}`);

interface ComposeService {
  cap_drop?: string[];
  cap_add?: string[];
  devices?: string[];
  sysctls?: Record<string, string>;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
}

/** `${NAME:-default}` as docker-compose resolves it on a bare checkout (no .env). */
function composeValue(v: string): string {
  return String(v).replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, "$1");
}

describe.skipIf(skip !== undefined)("the gateway image, built and run by podman", () => {
  const tag = uniqueTag();
  const name = `gg-ct-${tag}`;
  const image = `localhost/${name}:test`;
  const net = Number(tag) % 250;
  const dir = mkdtempSync(join(tmpdir(), "gg-container-"));
  const env = { ...process.env, CONTAINERS_CONF: join(dir, "containers.conf") };
  const created = { image: false, network: false, containers: [] as string[], volumes: [] as string[] };
  let ns: Netns | undefined;
  let veth: { hostAddr: string; nsAddr: string };
  const gwKey = generatePrivateKey();
  const clientKey = generatePrivateKey();
  const gwTunnelIp = `10.99.${net}.1`;
  const clientTunnelIp = `10.99.${net}.2`;
  const gw = `${name}-gw`;
  const plain = `${name}-plain`;
  const wgIf = `wgct${tag}`;
  let gwLog = "";

  async function run(cmd: string[], opts: { allowFail?: boolean; stdin?: Blob } = {}): Promise<{ code: number; out: string; err: string }> {
    const p = spawn(cmd, { env, stdin: opts.stdin ?? "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0 && !opts.allowFail) throw new Error(`${cmd.join(" ")} exited ${code}: ${err.trim().slice(-2000)}`);
    return { code, out, err };
  }
  const podman = (args: string[], opts?: { allowFail?: boolean; stdin?: Blob }) => run(["podman", ...args], opts);

  /** The stand-in base image (see the top of this file), unless one is there already. */
  async function ensureBaseImage(): Promise<void> {
    if ((await podman(["image", "exists", BASE_IMAGE], { allowFail: true })).code === 0) return;
    const rootfs = join(dir, "rootfs");
    const sources = readFileSync("/etc/apt/sources.list.d/debian.sources", "utf8");
    const mirror = /^URIs:\s*(\S+\/debian)\s*$/m.exec(sources)?.[1] ?? "http://deb.debian.org/debian";
    await run(["debootstrap", "--variant=minbase", "bookworm", rootfs, mirror]);
    rmSync(join(rootfs, "var/cache/apt/archives"), { recursive: true, force: true });
    mkdirSync(join(rootfs, "var/cache/apt/archives/partial"), { recursive: true });
    cpSync(realpathSync(Bun.which("bun")!), join(rootfs, "usr/local/bin/bun"));
    chmodSync(join(rootfs, "usr/local/bin/bun"), 0o755);
    const changes = ["--change", 'CMD ["/bin/bash"]'];
    const hostCa = [process.env.NODE_EXTRA_CA_CERTS, "/etc/ssl/certs/ca-certificates.crt"].find((f) => f && existsSync(f));
    if (hostCa) {
      mkdirSync(join(rootfs, "etc/ssl/certs"), { recursive: true });
      cpSync(hostCa, join(rootfs, "etc/ssl/certs/host-ca.crt"));
      changes.push("--change", "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca.crt");
    }
    const tar = spawn(["tar", "-C", rootfs, "-c", "."], { stdout: "pipe" });
    const imported = spawn(["podman", "import", ...changes, "-", BASE_IMAGE], { env, stdin: tar.stdout, stdout: "pipe", stderr: "pipe" });
    const [code, err] = await Promise.all([imported.exited, new Response(imported.stderr).text()]);
    if (code !== 0) throw new Error(`podman import exited ${code}: ${err}`);
    rmSync(rootfs, { recursive: true, force: true });
  }

  /** `podman port`: the host address and port a container port was published on. */
  async function published(container: string, port: string): Promise<{ host: string; port: number }> {
    const out = (await podman(["port", container, port])).out.trim();
    const m = /^(.*):(\d+)$/.exec(out.split("\n")[0]!)!;
    return { host: m[1]!, port: Number(m[2]) };
  }

  async function get(url: string): Promise<{ status: number; body: string } | Error> {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(3000) });
      return { status: r.status, body: await r.text() };
    } catch (err) {
      return err as Error;
    }
  }

  async function containerIp(container: string): Promise<string> {
    return (await podman(["inspect", "--format", `{{(index .NetworkSettings.Networks "${name}").IPAddress}}`, container])).out.trim();
  }

  beforeAll(async () => {
    writeFileSync(env.CONTAINERS_CONF, [
      "[containers]",
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      "[engine]",
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      "[network]",
      'network_backend = "cni"',
      "",
    ].join("\n"));
    await ensureBaseImage();
    // Docker format, so the image keeps its HEALTHCHECK (OCI images have none); no layer cache,
    // so removing the image leaves no intermediate images behind.
    created.image = true;
    await podman(["build", "--format", "docker", "--layers=false", "--tag", image, ROOT]);

    const tun = join(dir, "tun");
    sh(["mknod", "-m", "666", tun, "c", "10", "200"]);
    chmodSync(tun, 0o666);
    created.network = true;
    await podman(["network", "create", "--subnet", `10.214.${net}.0/24`, name]);

    ns = new Netns(`gg-ctc-${tag}`);
    veth = vethInto(ns, `ggcth${tag}`, `ggctn${tag}`, Number(tag) % 16000);

    // The gateway's own wg-quick file, mounted like the compose file's comment says, and the
    // first admin's password as a secret file: both readable by the gateway's uid only.
    const secrets = join(dir, "secrets");
    mkdirSync(secrets, { mode: 0o755 });
    chmodSync(secrets, 0o755);
    writeFileSync(join(secrets, "glassgate_admin_password"), "container-test-password-1\n", { mode: 0o600 });
    chownSync(join(secrets, "glassgate_admin_password"), GATEWAY_UID, GATEWAY_UID);
    const config = join(dir, "glassgate.conf");
    writeFileSync(config, ["[Interface]", `PrivateKey = ${encodeKey(gwKey)}`, `Address = ${gwTunnelIp}/24`, "ListenPort = 52625", "",
      "[Peer]", `PublicKey = ${encodeKey(publicKeyOf(clientKey))}`, `AllowedIPs = ${clientTunnelIp}/32`, ""].join("\n"), { mode: 0o600 });
    chownSync(config, GATEWAY_UID, GATEWAY_UID);

    // The gateway service's options, read from docker-compose.yml.
    const svc = (Bun.YAML.parse(readFileSync(join(ROOT, "docker-compose.yml"), "utf8")) as { services: Record<string, ComposeService> }).services.gateway!;
    const args = ["run", "--detach", "--name", gw, "--network", name];
    for (const c of svc.cap_drop ?? []) args.push("--cap-drop", c);
    for (const c of svc.cap_add ?? []) args.push("--cap-add", c);
    for (const d of svc.devices ?? []) args.push("--device", d.replace(/^\/dev\/net\/tun:/, `${tun}:`));
    for (const [k, v] of Object.entries(svc.sysctls ?? {})) args.push("--sysctl", `${k}=${v}`);
    for (const [k, v] of Object.entries(svc.environment ?? {})) args.push("--env", `${k}=${composeValue(v)}`);
    args.push("--env", "GLASSGATE_CONFIG=/config/glassgate.conf", "--volume", `${config}:/config/glassgate.conf:ro`);
    for (const v of svc.volumes ?? []) {
      const [src, target, mode] = v.split(":");
      if (src === "./secrets") args.push("--volume", `${secrets}:${target}:${mode ?? "rw"}`);
      else if (!src!.startsWith(".")) {
        created.volumes.push(`${name}-${src}`);
        args.push("--volume", `${name}-${src}:${target}${mode ? `:${mode}` : ""}`);
      } else throw new Error(`docker-compose.yml: gateway volume ${v} is new to this test`);
    }
    // Same container ports; host ports picked by podman, on addresses this test owns.
    for (const p of svc.ports ?? []) {
      const m = /^(?:([\d.]+):)?(\d+):(\d+)(\/udp)?$/.exec(p);
      if (!m) throw new Error(`docker-compose.yml: gateway port ${p} is new to this test`);
      if (m[4]) args.push("--publish", `${veth.hostAddr}::${m[3]}/udp`);
      else args.push("--publish", `${m[1]}::${m[3]}`);
    }
    created.containers.push(gw);
    await podman([...args, image]);

    // The image as a plain `docker run -p 8080:8080` runs it: no GLASSGATE_ADMIN.
    created.containers.push(plain);
    await podman(["run", "--detach", "--name", plain, "--network", name, "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--device", `${tun}:/dev/net/tun`,
      "--publish", "127.0.0.1::8080", image]);

    for (const c of [gw, plain]) {
      await waitFor(`${c} to be up`, async () => {
        const logs = await podman(["logs", c], { allowFail: true });
        const state = (await podman(["inspect", "--format", "{{.State.Status}}", c])).out.trim();
        if (state !== "running") throw new Error(`${c} is ${state}: ${logs.out}${logs.err}`);
        if (c === gw) gwLog = logs.out + logs.err;
        return (logs.out + logs.err).includes('"msg":"gateway up"');
      }, 30_000, 250);
    }
  }, 600_000);

  afterAll(async () => {
    await ns?.destroy();
    for (const c of created.containers) await podman(["rm", "--force", "--volumes", "--time", "2", c], { allowFail: true });
    for (const v of created.volumes) await podman(["volume", "rm", "--force", v], { allowFail: true });
    if (created.network) await podman(["network", "rm", "--force", name], { allowFail: true });
    if (created.image) await podman(["rmi", "--force", image], { allowFail: true });
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  test("the gateway runs as uid 10001 holding CAP_NET_ADMIN and no other capability", async () => {
    const pid = (await podman(["inspect", "--format", "{{.State.Pid}}", gw])).out.trim();
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    expect(readFileSync(`/proc/${pid}/comm`, "utf8").trim()).toBe("bun");
    expect(/^Uid:\s+(.+)$/m.exec(status)![1]!.split(/\s+/)).toEqual(Array(4).fill(String(GATEWAY_UID)));
    for (const set of ["CapEff", "CapPrm", "CapBnd"]) {
      expect(`${set} ${BigInt(`0x${new RegExp(`^${set}:\\s+(\\w+)$`, "m").exec(status)![1]}`)}`).toBe(`${set} ${1n << BigInt(CAP_NET_ADMIN)}`);
    }
  });

  test("the image has /run/glassgate and /data owned by the gateway's user, so new volumes there are writable", async () => {
    // Run without volumes: what a new named volume copies its owner and mode from.
    const r = await podman(["run", "--rm", "--network", "none", "--entrypoint", "stat", image, "-c", "%n %u %a", "/run/glassgate", "/data"]);
    expect(r.out.trim().split("\n")).toEqual([`/run/glassgate ${GATEWAY_UID} 750`, `/data ${GATEWAY_UID} 700`]);
  });

  test("the admin token file is created in the token volume, owned by the gateway and not writable by others", async () => {
    const r = await podman(["exec", gw, "stat", "-c", "%u %g %a %s", "/run/glassgate/admin_token"]);
    const [uid, gid, mode, size] = r.out.trim().split(" ");
    expect(uid).toBe(String(GATEWAY_UID));
    // 0640 in the gateway's group: Prometheus, another uid, reads it as a member of that group
    // (compose's group_add); nobody else can.
    expect(gid).toBe(String(GATEWAY_UID));
    expect(mode).toBe("640");
    expect(Number(size)).toBeGreaterThan(40);
  });

  test("the first admin's password comes from the secret file, none is generated", () => {
    expect(gwLog).toContain('"msg":"first admin created"');
    expect(gwLog).not.toContain("generated password");
  });

  test("/healthz answers on the admin port published on the host's loopback, and the image's healthcheck passes", async () => {
    const admin = await published(gw, "8080/tcp");
    expect(admin.host).toBe("127.0.0.1");
    const r = await get(`http://127.0.0.1:${admin.port}/healthz`);
    expect(r).toEqual({ status: 200, body: '{"status":"ok"}' });
    // `podman healthcheck run` runs the image's HEALTHCHECK once: exit 0 when healthy, 1 and "unhealthy" when not.
    const hc = await podman(["healthcheck", "run", gw], { allowFail: true });
    expect(`${hc.code} ${hc.out.trim()}`).toBe("0 ");
  });

  test("run bare, the image keeps the admin UI off the container's network: not reachable on its address nor through a published port", async () => {
    // The same request reaches the compose-configured gateway, so a refusal here is the bind address.
    expect(await get(`http://${await containerIp(gw)}:8080/healthz`)).toEqual({ status: 200, body: '{"status":"ok"}' });
    const direct = await get(`http://${await containerIp(plain)}:8080/healthz`);
    expect(direct).toBeInstanceOf(Error);
    const viaPort = await get(`http://127.0.0.1:${(await published(plain, "8080/tcp")).port}/healthz`);
    expect(viaPort).toBeInstanceOf(Error);
    // …while it serves on its own loopback (the healthcheck asks there).
    const hc = await podman(["healthcheck", "run", plain], { allowFail: true });
    expect(`${hc.code} ${hc.out.trim()}`).toBe("0 ");
  });

  test("a wireguard-go client pings the gateway's tunnel address through the published UDP port", async () => {
    const udp = await published(gw, "52625/udp");
    expect(udp.host).toBe(veth.hostAddr);
    ns!.start(["wireguard-go", "-f", wgIf], { LOG_LEVEL: "error" });
    await waitFor(`${wgIf} to exist`, () => ns!.exec(["ip", "link", "show", wgIf], { allowFail: true }).includes(wgIf));
    const keyFile = join(dir, "client.key");
    writeFileSync(keyFile, encodeKey(clientKey), { mode: 0o600 });
    ns!.exec(["wg", "set", wgIf, "private-key", keyFile, "peer", encodeKey(publicKeyOf(gwKey)), "endpoint", `${veth.hostAddr}:${udp.port}`, "allowed-ips", `10.99.${net}.0/24`]);
    ns!.exec(["ip", "addr", "add", `${clientTunnelIp}/24`, "dev", wgIf]);
    ns!.exec(["ip", "link", "set", wgIf, "mtu", "1420", "up"]);
    const out = ns!.exec(["ping", "-c", "3", "-i", "0.2", "-W", "3", gwTunnelIp], { allowFail: true });
    expect(out).toContain("3 received");
  }, 30_000);
});
