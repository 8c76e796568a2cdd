#!/usr/bin/env bun
// glassgate command line. Exit codes (DESIGN.md §3): 0 ok, 1 runtime failure, 2 bad config/usage.
import { ConfigError, parseConfig } from "./config/index.ts";
import { decodeKey, encodeKey, generatePrivateKey, publicKeyOf } from "./crypto/x25519.ts";
import { formatCidr } from "./ip/address.ts";

const USAGE = `usage: glassgate <command>

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
    process.stderr.write(`glassgate: ${err instanceof Error ? err.stack : String(err)}\n`);
    return 1;
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
