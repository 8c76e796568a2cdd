// Crypto for glassgate: vetted libraries only (@noble/*, libsodium). The public face of src/crypto.
export { AEAD_KEY_LENGTH, NONCE_LENGTH, TAG_LENGTH, XNONCE_LENGTH, type Aead, type AeadBackendName } from "./aead.ts";
export { nobleAead } from "./aead-noble.ts";
export { loadSodiumAead } from "./aead-sodium.ts";
export { selectAead, selfTest } from "./select.ts";
export { constantTimeEqual, hash, hmac, kdf1, kdf2, kdf3, mac } from "./hash.ts";
export {
  decodeKey,
  encodeKey,
  generateKeyPair,
  generatePrivateKey,
  isUsablePublicKey,
  keyToU256Decimal,
  publicKeyOf,
  publicKeyProblem,
  randomBytes,
  sharedSecret,
  type KeyPair,
} from "./x25519.ts";
