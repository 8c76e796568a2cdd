// The local side of WireGuard: our static key pair and everything derived from it once (mac1 and
// cookie keys, the responder's initial handshake hash), plus the cookie checker every peer shares.
import { hash } from "../crypto/hash.ts";
import { publicKeyOf } from "../crypto/x25519.ts";
import { CONSTRUCTION, IDENTIFIER, LABEL_COOKIE, LABEL_MAC1 } from "./constants.ts";
import { CookieChecker } from "./cookie.ts";

/** HASH(CONSTRUCTION): the chaining key every handshake starts from. */
export const INITIAL_CHAIN_KEY = hash(CONSTRUCTION);
/** HASH(Ci ‖ IDENTIFIER): the handshake hash before the responder's static key is mixed in. */
export const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, IDENTIFIER);

export class LocalIdentity {
  readonly publicKey: Uint8Array;
  /** HASH(LABEL_MAC1 ‖ Spub): the key peers use for mac1 on messages to us. */
  readonly mac1Key: Uint8Array;
  /** HASH(LABEL_COOKIE ‖ Spub): encrypts the cookies we hand out. */
  readonly cookieKey: Uint8Array;
  /** H after mixing our public key: where a responder starts. */
  readonly responderHash: Uint8Array;
  readonly cookies: CookieChecker;

  constructor(readonly privateKey: Uint8Array, random: (n: number) => Uint8Array) {
    this.publicKey = publicKeyOf(privateKey);
    this.mac1Key = hash(LABEL_MAC1, this.publicKey);
    this.cookieKey = hash(LABEL_COOKIE, this.publicKey);
    this.responderHash = hash(INITIAL_HASH, this.publicKey);
    this.cookies = new CookieChecker(this.mac1Key, this.cookieKey, random);
  }

  /** Overwrites the private key; call on shutdown. */
  zeroize(): void {
    this.privateKey.fill(0);
  }
}
