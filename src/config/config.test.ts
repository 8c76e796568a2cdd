import { describe, expect, test } from "bun:test";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { formatCidr } from "../ip/address.ts";
import { mkdtempSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, DEFAULT_LISTEN_PORT, MAX_CONFIG_BYTES, parseConfig, readConfigText } from "./index.ts";
import { LOW_ORDER_KEYS } from "../../test/support/low-order-keys.ts";

const priv = encodeKey(generatePrivateKey());
const pub1 = encodeKey(publicKeyOf(generatePrivateKey()));
const pub2 = encodeKey(publicKeyOf(generatePrivateKey()));
const psk = encodeKey(generatePrivateKey());

const good = `
# glassgate example
[Interface]
PrivateKey = ${priv}
Address = 10.99.0.1/24, fd00:99::1/64
ListenPort = 51820
MTU = 1380
PostUp = iptables -A FORWARD -i %i -j ACCEPT

[Peer]   ; laptop
PublicKey = ${pub1}
PresharedKey = ${psk}
AllowedIPs = 10.99.0.2/32, fd00:99::2/128
Endpoint = 192.0.2.7:51820
PersistentKeepalive = 25

[Peer]
PublicKey = ${pub2}
AllowedIPs = 10.99.0.3/32
AllowedIPs = 10.50.0.0/16
Endpoint = [2001:db8::1]:4500
`;

test("a wg-quick file with two peers parses into typed values", () => {
  const c = parseConfig(good, "gw.conf");
  expect(encodeKey(c.interface.privateKey)).toBe(priv);
  expect(c.interface.listenPort).toBe(51820);
  expect(c.interface.mtu).toBe(1380);
  expect(c.interface.addresses.map(formatCidr)).toEqual(["10.99.0.1/24", "fd00:99::1/64"]);
  expect(c.peers).toHaveLength(2);
  expect(encodeKey(c.peers[0]!.presharedKey!)).toBe(psk);
  expect(c.peers[0]!.allowedIPs.map(formatCidr)).toEqual(["10.99.0.2/32", "fd00:99::2/128"]);
  expect(c.peers[0]!.endpoint).toEqual({ host: "192.0.2.7", port: 51820 });
  expect(c.peers[0]!.persistentKeepalive).toBe(25);
  expect(c.peers[1]!.allowedIPs.map(formatCidr)).toEqual(["10.99.0.3/32", "10.50.0.0/16"]);
  expect(c.peers[1]!.endpoint).toEqual({ host: "2001:db8::1", port: 4500 });
});

test("ListenPort defaults to Firezone's 52625", () => {
  expect(parseConfig(`[Interface]\nPrivateKey = ${priv}\n`, "x").interface.listenPort).toBe(DEFAULT_LISTEN_PORT);
  expect(DEFAULT_LISTEN_PORT).toBe(52625);
});

describe("every error names file, line, key and the bad value", () => {
  const cases: [string, string, string][] = [
    ["port too big", `[Interface]\nPrivateKey = ${priv}\nListenPort = 99999`, 'gw.conf:3: ListenPort: "99999" is not a port (0–65535)'],
    ["port not a number", `[Interface]\nPrivateKey = ${priv}\nListenPort = http`, 'gw.conf:3: ListenPort: "http" is not a number'],
    ["bad key", `[Interface]\nPrivateKey = abc`, 'gw.conf:2: PrivateKey: "abc" is not a WireGuard key'],
    ["bad CIDR", `[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${pub1}\nAllowedIPs = 10.0.0.0/40`, 'gw.conf:5: AllowedIPs: "10.0.0.0/40" has prefix length "40"'],
    ["bad endpoint", `[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${pub1}\nEndpoint = host-without-port`, 'gw.conf:5: Endpoint: "host-without-port" is not "host:port"'],
    ["unknown key (typo)", `[Interface]\nPrivateKey = ${priv}\nListenPrt = 1`, "gw.conf:3: ListenPrt: unknown key in [Interface]"],
    ["unknown section", `[Interfaces]\n`, 'gw.conf:1: unknown section "[Interfaces]"'],
    ["missing private key", `[Interface]\nListenPort = 1`, "gw.conf:1: PrivateKey: missing in [Interface]"],
    ["no interface", `[Peer]\nPublicKey = ${pub1}`, "gw.conf: no [Interface] section"],
    ["duplicate peer", `[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${pub1}\n[Peer]\nPublicKey = ${pub1}`, `gw.conf:5: PublicKey: "${pub1}" is already the peer at line 3`],
    ["low-order public key", `[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${LOW_ORDER_KEYS[2]}`, `gw.conf:4: PublicKey: "${LOW_ORDER_KEYS[2]}" is a low-order point`],
    ["all-zero public key", `[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${LOW_ORDER_KEYS[0]}`, `gw.conf:4: PublicKey: "${LOW_ORDER_KEYS[0]}" is a low-order point`],
    ["all-zero private key", `[Interface]\nPrivateKey = ${LOW_ORDER_KEYS[0]}`, `gw.conf:2: PrivateKey: "${LOW_ORDER_KEYS[0]}" is all zeros: not a private key`],
    ["the gateway's own key as a peer", `[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${encodeKey(publicKeyOf(Buffer.from(priv, "base64")))}`, `gw.conf:3: PublicKey: "${encodeKey(publicKeyOf(Buffer.from(priv, "base64")))}" is this gateway's own public key`],
    ["bad preshared key", `[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${pub1}\nPresharedKey = short`, 'gw.conf:5: PresharedKey: "short" is not a WireGuard key'],
    ["garbage line", `[Interface]\nPrivateKey = ${priv}\nwhat`, 'gw.conf:3: "what" is not "Key = Value"'],
    ["two peers with one tunnel address (names both)", `[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${pub1}\nAllowedIPs = 10.99.0.2/32\n[Peer]\nPublicKey = ${pub2}\nAllowedIPs = 10.99.0.7/32, 10.99.0.2\n`,
      `gw.conf:8: AllowedIPs: 10.99.0.2/32 is already an address of the config file's peer at line 3 (${pub1})`],
    ["MTU out of range", `[Interface]\nPrivateKey = ${priv}\nMTU = 100`, 'gw.conf:3: MTU: "100" is not an MTU (1280–9000)'],
  ];
  for (const [name, text, message] of cases) {
    test(name, () => {
      let err: unknown;
      try {
        parseConfig(text, "gw.conf");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toStartWith(message);
    });
  }
});

test("a peer's prefix inside another peer's wider one is routing, not a clash: both parse", () => {
  const c = parseConfig(`[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${pub1}\nAllowedIPs = 0.0.0.0/1, 128.0.0.0/1\n[Peer]\nPublicKey = ${pub2}\nAllowedIPs = 10.99.0.2/32\n`, "gw.conf");
  expect(c.peers).toHaveLength(2);
});

describe("[Resource] sections and per-peer Resources", () => {
  const base = `[Interface]\nPrivateKey = ${priv}\n`;
  test("resources with filters, and grants with expiry", () => {
    const c = parseConfig(`${base}[Resource]\nId = lan\nType = cidr\nAddress = 10.50.0.0/16\nFilters = tcp/22, udp/5000-5100, icmp\n` +
      `[Resource]\nId = web\nType = dns\nAddress = *.example.com\n[Peer]\nPublicKey = ${pub1}\nAllowedIPs = 10.99.0.2/32\nResources = lan, web@2030-01-01T00:00:00Z\n`, "gw.conf");
    expect(c.resources.map((r) => r.id)).toEqual(["lan", "web"]);
    expect(c.resources[0]!.filters).toEqual([{ protocol: "tcp", portStart: 22, portEnd: 22 }, { protocol: "udp", portStart: 5000, portEnd: 5100 }, { protocol: "icmp" }]);
    expect(c.peers[0]!.resources).toEqual([{ rid: "lan", expiresAt: null }, { rid: "web", expiresAt: Date.parse("2030-01-01T00:00:00Z") }]);
  });
  test("errors name the line and the bad value", () => {
    expect(() => parseConfig(`${base}[Resource]\nId = lan\nType = cidr\nAddress = 10.50.0.0/16\nFilters = tcp/http\n`, "gw.conf")).toThrow('gw.conf:7: Filters: "tcp/http" is not a filter');
    expect(() => parseConfig(`${base}[Resource]\nId = lan\nType = vpn\n`, "gw.conf")).toThrow("gw.conf:5: Type:");
    expect(() => parseConfig(`${base}[Peer]\nPublicKey = ${pub1}\nResources = nope\n`, "gw.conf")).toThrow('gw.conf:5: Resources: "nope" is not the Id of any [Resource]');
    expect(() => parseConfig(`${base}[Resource]\nId = a\nType = cidr\nAddress = 10.0.0.0/99\n`, "gw.conf")).toThrow('gw.conf:3: [Resource]: resource address: "10.0.0.0/99"');
  });
});

describe("config files of hostile size", () => {
  test("100 000 AllowedIPs lines in one [Peer] parse in one pass (they were copied per line: quadratic)", () => {
    const ips = Array.from({ length: 100_000 }, (_, i) => `AllowedIPs = 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);
    const c = parseConfig(`[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${pub1}\n${ips.join("\n")}\n`, "big.conf");
    expect(c.peers[0]!.allowedIPs).toHaveLength(100_000);
    expect(formatCidr(c.peers[0]!.allowedIPs[99_999]!)).toBe("10.1.134.159/32");
  }, 20_000);

  test("an error quotes at most the start of a huge value, with control characters escaped", () => {
    const huge = `10.0.0.1/32\u001b[2J${"9".repeat(1_000_000)}`;
    let err: ConfigError | undefined;
    try {
      parseConfig(`[Interface]\nPrivateKey = ${priv}\n[Peer]\nPublicKey = ${pub1}\nAllowedIPs = ${huge}\n`, "bad.conf");
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toStartWith("bad.conf:5: AllowedIPs: ");
    expect(err!.message.length).toBeLessThan(500);
    expect(err!.message).not.toContain("\u001b");
    for (const line of [`${"x".repeat(100_000)}`, `[${"y".repeat(100_000)}]`]) {
      expect(() => parseConfig(`[Interface]\nPrivateKey = ${priv}\n${line}\n`, "bad.conf")).toThrow(ConfigError);
      try {
        parseConfig(`[Interface]\nPrivateKey = ${priv}\n${line}\n`, "bad.conf");
      } catch (e) {
        expect((e as Error).message.length).toBeLessThan(300);
      }
    }
  });

  test("a config that is not a regular file, or larger than 16 MiB, is refused before it is read", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gg-cfg-"));
    const big = join(dir, "big.conf");
    writeFileSync(big, "");
    truncateSync(big, MAX_CONFIG_BYTES + 1); // sparse: costs no disk
    await expect(readConfigText(big)).rejects.toThrow(`${big}: is larger than 16 MiB (${MAX_CONFIG_BYTES + 1} bytes): not a gateway config`);
    await expect(readConfigText("/dev/zero")).rejects.toThrow("/dev/zero: is not a regular file");
    await expect(readConfigText(dir)).rejects.toThrow(`${dir}: is not a regular file`);
    const ok = join(dir, "ok.conf");
    writeFileSync(ok, good);
    expect(await readConfigText(ok)).toBe(good);
  });
});
