// Picks the AEAD backend at start: libsodium when it loads and passes a known-answer check, else
// the noble reference — with one log line saying which and why. GLASSGATE_AEAD=noble|libsodium forces one.
import type { Aead, AeadBackendName } from "./aead.ts";
import { nobleAead } from "./aead-noble.ts";
import { loadSodiumAead } from "./aead-sodium.ts";
import { RFC8439_AEAD } from "./vectors.ts";
import type { TargetLogger } from "../telemetry/log.ts";

/** Runs the RFC 8439 §2.8.2 vector; a backend that fails it must never carry traffic. */
export function selfTest(aead: Aead): boolean {
  const v = RFC8439_AEAD;
  const out = new Uint8Array(v.plaintext.length + 16);
  aead.seal(v.key, v.nonce, v.plaintext, v.aad, out);
  if (!equal(out, v.sealed)) return false;
  const back = new Uint8Array(v.plaintext.length);
  return aead.open(v.key, v.nonce, v.sealed, v.aad, back) === v.plaintext.length && equal(back, v.plaintext);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function selectAead(log?: TargetLogger, prefer: string | undefined = process.env.GLASSGATE_AEAD): Aead {
  if (prefer !== undefined && prefer !== "" && prefer !== "noble" && prefer !== "libsodium") {
    throw new Error(`GLASSGATE_AEAD: "${prefer}" is not a backend (noble or libsodium)`);
  }
  if (prefer === "noble") {
    log?.info("AEAD backend selected", { backend: "noble", reason: "GLASSGATE_AEAD=noble" });
    return nobleAead;
  }
  try {
    const sodium = loadSodiumAead();
    if (!selfTest(sodium)) throw new Error("libsodium failed the RFC 8439 known-answer test");
    log?.info("AEAD backend selected", { backend: "libsodium" });
    return sodium;
  } catch (err) {
    if (prefer === "libsodium") throw new Error("GLASSGATE_AEAD=libsodium but libsodium is unusable", { cause: err });
    log?.warn("libsodium unavailable, using the slower noble AEAD backend", { backend: "noble", err });
    return nobleAead;
  }
}

export type { AeadBackendName };
