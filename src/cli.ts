#!/usr/bin/env bun
// glassgate command line. Exit codes (DESIGN.md §3): 0 ok, 1 runtime failure, 2 bad config/usage.
import { ConfigError, parseConfig } from "./config/index.ts";
import { decodeKey, encodeKey, generatePrivateKey, publicKeyOf } from "./crypto/x25519.ts";
import { formatCidr } from "./ip/address.ts";
import { parseArgs } from "node:util";
import { runStandalone } from "./standalone.ts";
import { Logger, errorChain, parseLogFilter } from "./telemetry/log.ts";

const USAGE = `usage: glassgate <command>

  up --config FILE [--interface NAME] [--listen-port N] [--admin HOST:PORT] [--data DIR]
                         run the standalone gateway (needs root or CAP_NET_ADMIN for the TUN device)
  keygen                 print a new private key (like \`wg genkey\`)
  pubkey                 read a private key on stdin, print its public key (like \`wg pubkey\`)
  check-config FILE      validate a wg-quick style config and summarise it
`;

class UsageError extends Error {}

async function readStdin(): Promise<string> {
  return await new Response(Bun.stdin.stream()).text();
}

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "keygen":
        out(encodeKey(generatePrivateKey()) + "\n");
        return 0;
      case "pubkey": {
        const text = (await readStdin()).trim();
        let key: Uint8Array;
        try {
          key = decodeKey(text);
        } catch (err) {
          throw new UsageError(`pubkey: ${(err as Error).message}`);
        }
        out(encodeKey(publicKeyOf(key)) + "\n");
        return 0;
      }
      case "up":
        return await up(rest);
      case "check-config": {
        const file = rest[0];
        if (!file) throw new UsageError("check-config: missing FILE");
        const f = Bun.file(file);
        if (!(await f.exists())) throw new UsageError(`check-config: ${file}: no such file`);
        const c = parseConfig(await f.text(), file);
        out(`${file}: ok\n`);
        out(`  interface  public key ${encodeKey(publicKeyOf(c.interface.privateKey))}, listen port ${c.interface.listenPort}, ` +
          `mtu ${c.interface.mtu}, address ${c.interface.addresses.map(formatCidr).join(", ") || "(none)"}\n`);
        for (const p of c.peers) {
          const ep = p.endpoint ? `${p.endpoint.host}:${p.endpoint.port}` : "(learnt when it connects)";
          out(`  peer       ${encodeKey(p.publicKey)} allowed ${p.allowedIPs.map(formatCidr).join(", ") || "(none)"} endpoint ${ep}\n`);
        }
        return 0;
      }
      case undefined:
      case "help":
      case "--help":
      case "-h":
        out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`glassgate: ${err.message}\n`);
      if (err instanceof UsageError && !err.message.includes(":")) process.stderr.write(USAGE);
      return 2;
    }
    // Runtime failure: the whole cause chain on one line ("creating TUN …: needs root …: EPERM").
    process.stderr.write(`glassgate: ${errorChain(err)}\n`);
    if (process.env.GLASSGATE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}

function parsePort(flag: string, value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > 65535) throw new UsageError(`${flag}: "${value}" is not a port (0–65535)`);
  return Number(value);
}

/** "127.0.0.1:8080", "[::1]:8080" or ":8080" (all addresses). */
function parseHostPort(flag: string, value: string): { hostname: string; port: number } {
  const m = /^\[([^\]]+)\]:([0-9]+)$/.exec(value) ?? /^([^:]*):([0-9]+)$/.exec(value);
  if (!m) throw new UsageError(`${flag}: "${value}" is not HOST:PORT`);
  return { hostname: m[1] || "0.0.0.0", port: parsePort(flag, m[2]!) };
}

/** `glassgate up`: flags beat environment, which beats the config file, which beats defaults. */
async function up(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        config: { type: "string" },
        interface: { type: "string" },
        "listen-port": { type: "string" },
        admin: { type: "string" },
        data: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(`up: ${(err as Error).message}`);
  }
  const env = process.env;
  const configFile = values.config ?? env.GLASSGATE_CONFIG;
  if (!configFile) throw new UsageError("up: missing --config FILE (or GLASSGATE_CONFIG)");
  const f = Bun.file(configFile);
  if (!(await f.exists())) throw new UsageError(`up: ${configFile}: no such file`);
  const config = parseConfig(await f.text(), configFile);
  const portText = values["listen-port"] ?? env.GLASSGATE_LISTEN_PORT;
  const interfaceName = values.interface ?? env.GLASSGATE_INTERFACE ?? "glassgate0";
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(interfaceName)) throw new UsageError(`--interface: "${interfaceName}" is not an interface name (1–15 of A-Z a-z 0-9 _ . -)`);
  let logger: Logger;
  try {
    logger = new Logger(parseLogFilter(env.GLASSGATE_LOG));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }

  const gw = await runStandalone({
    config,
    interfaceName,
    listenPort: portText !== undefined ? parsePort("--listen-port", portText) : config.interface.listenPort,
    admin: parseHostPort("--admin", values.admin ?? env.GLASSGATE_ADMIN ?? "127.0.0.1:8080"),
    adminToken: env.GLASSGATE_ADMIN_TOKEN || undefined,
    dataDir: values.data ?? env.GLASSGATE_DATA_DIR ?? "./data",
    keepDefaultBuffers: env.FIREZONE_NO_INC_BUF !== undefined,
    logger,
  });

  return await new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      // The goodbye, flush and key erasure get 2 s; then we leave regardless.
      const deadline = setTimeout(() => resolve(0), 2000);
      gw.shutdown(signal).then(
        () => {
          clearTimeout(deadline);
          resolve(0);
        },
        (err) => {
          logger.log("error", "gateway", "shutdown failed", { err });
          resolve(1);
        },
      );
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
