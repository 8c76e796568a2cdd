// Noise_IKpsk2 as WireGuard uses it (whitepaper §5.4.2–§5.4.4): the pure computations that build
// and consume initiation and response messages. No state beyond what is passed in and returned;
// the peer state machine (peer.ts) decides when to call these. mac1/mac2 are added by cookie.ts.
import { EMPTY, TAG_LENGTH, openToNew, sealToNew, type Aead } from "../crypto/aead.ts";
import { hash, kdf1, kdf2, kdf3 } from "../crypto/hash.ts";
import { generateKeyPair, sharedSecret } from "../crypto/x25519.ts";
import { INITIATION_SIZE, MESSAGE_INITIATION, MESSAGE_RESPONSE, RESPONSE_SIZE } from "./constants.ts";
import { INITIAL_CHAIN_KEY, INITIAL_HASH, type LocalIdentity } from "./identity.ts";
import { Initiation, Response, readU32, writeU32 } from "./messages.ts";
import { TAI64N_LENGTH, tai64n } from "./tai64n.ts";

const ZERO_NONCE = new Uint8Array(12);
const ZERO_KEY = new Uint8Array(32);

/** What an initiator keeps between sending an initiation and receiving the response. */
export interface InitiatorState {
  localIndex: number;
  chainKey: Uint8Array;
  hash: Uint8Array;
  ephemeralPrivate: Uint8Array;
}

/** Transport keys derived from a completed handshake. */
export interface SessionKeys {
  send: Uint8Array;
  recv: Uint8Array;
}

/** A decrypted, authenticated-by-DH initiation, before the responder has checked who sent it. */
export interface ConsumedInitiation {
  remoteStatic: Uint8Array;
  remoteIndex: number;
  remoteEphemeral: Uint8Array;
  timestamp: Uint8Array;
  chainKey: Uint8Array;
  hash: Uint8Array;
}

function mixHash(h: Uint8Array, data: Uint8Array): Uint8Array {
  return hash(h, data);
}

/**
 * Overwrites secrets once they are spent: DH outputs, superseded chaining keys, message keys.
 * A later memory disclosure (core dump, swap, a heap bug) then cannot recover past sessions'
 * keys from what the handshake left behind — wireguard-go does the same with setZero in
 * noise-protocol.go. JS may still hold copies inside library internals; these are ours.
 */
function wipe(...secrets: (Uint8Array | undefined)[]): void {
  for (const s of secrets) s?.fill(0);
}

/** Mixes `input` into the chaining key, erasing the superseded one. */
function mixKey(ck: Uint8Array, input: Uint8Array): Uint8Array {
  const next = kdf1(ck, input);
  ck.fill(0);
  return next;
}

/** Mixes `input` into the chaining key and derives a message key, erasing the superseded chaining key. */
function mixKeyAndKey(ck: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const out = kdf2(ck, input);
  ck.fill(0);
  return out;
}

/** Erases what an initiator kept for a handshake that completed or was abandoned. */
export function wipeInitiatorState(state: InitiatorState): void {
  wipe(state.chainKey, state.hash, state.ephemeralPrivate);
}

/** Erases the secrets of a consumed initiation once it was answered or refused. */
export function wipeConsumedInitiation(init: ConsumedInitiation): void {
  wipe(init.chainKey, init.hash);
}

/**
 * Builds an initiation to `remoteStatic` (macs left zero). `staticShared` is DH(Spriv_local,
 * Spub_remote), which peers compute once. `unixMillis` is the wall clock for the TAI64N timestamp.
 */
export function createInitiation(
  aead: Aead,
  local: LocalIdentity,
  remoteStatic: Uint8Array,
  staticShared: Uint8Array,
  localIndex: number,
  unixMillis: number,
  random: (n: number) => Uint8Array,
): { message: Uint8Array; state: InitiatorState } | undefined {
  const msg = new Uint8Array(INITIATION_SIZE);
  msg[0] = MESSAGE_INITIATION;
  writeU32(msg, Initiation.sender, localIndex);

  let h = mixHash(INITIAL_HASH, remoteStatic);
  const eph = generateKeyPair(random);
  let ck = kdf1(INITIAL_CHAIN_KEY, eph.publicKey);
  msg.set(eph.publicKey, Initiation.ephemeral);
  h = mixHash(h, eph.publicKey);

  const es = sharedSecret(eph.privateKey, remoteStatic);
  if (!es) return void wipe(ck, eph.privateKey);
  let key: Uint8Array;
  [ck, key] = mixKeyAndKey(ck, es);
  wipe(es);
  const encStatic = sealToNew(aead, key, ZERO_NONCE, local.publicKey, h);
  wipe(key);
  msg.set(encStatic, Initiation.static);
  h = mixHash(h, encStatic);

  [ck, key] = mixKeyAndKey(ck, staticShared);
  const encTimestamp = sealToNew(aead, key, ZERO_NONCE, tai64n(unixMillis), h);
  wipe(key);
  msg.set(encTimestamp, Initiation.timestamp);
  h = mixHash(h, encTimestamp);

  return { message: msg, state: { localIndex, chainKey: ck, hash: h, ephemeralPrivate: eph.privateKey } };
}

/** Responder: decrypts an initiation (mac1 already checked). Undefined when it does not decrypt. */
export function consumeInitiation(aead: Aead, local: LocalIdentity, msg: Uint8Array): ConsumedInitiation | undefined {
  const remoteEphemeral = msg.slice(Initiation.ephemeral, Initiation.static);
  let h = mixHash(local.responderHash, remoteEphemeral);
  let ck = kdf1(INITIAL_CHAIN_KEY, remoteEphemeral);

  const es = sharedSecret(local.privateKey, remoteEphemeral);
  if (!es) return void wipe(ck);
  let key: Uint8Array;
  [ck, key] = mixKeyAndKey(ck, es);
  wipe(es);
  const encStatic = msg.subarray(Initiation.static, Initiation.timestamp);
  const remoteStatic = openToNew(aead, key, ZERO_NONCE, encStatic, h);
  wipe(key);
  if (!remoteStatic) return void wipe(ck);
  h = mixHash(h, encStatic);

  const ss = sharedSecret(local.privateKey, remoteStatic);
  if (!ss) return void wipe(ck);
  [ck, key] = mixKeyAndKey(ck, ss);
  wipe(ss);
  const encTimestamp = msg.subarray(Initiation.timestamp, Initiation.mac1);
  const timestamp = openToNew(aead, key, ZERO_NONCE, encTimestamp, h);
  wipe(key);
  if (!timestamp || timestamp.length !== TAI64N_LENGTH) return void wipe(ck);
  h = mixHash(h, encTimestamp);

  return { remoteStatic, remoteIndex: readU32(msg, Initiation.sender), remoteEphemeral, timestamp, chainKey: ck, hash: h };
}

/** Responder: builds the response (macs left zero) and derives the transport keys. */
export function createResponse(
  aead: Aead,
  init: ConsumedInitiation,
  presharedKey: Uint8Array | undefined,
  localIndex: number,
  random: (n: number) => Uint8Array,
): { message: Uint8Array; keys: SessionKeys } | undefined {
  const msg = new Uint8Array(RESPONSE_SIZE);
  msg[0] = MESSAGE_RESPONSE;
  writeU32(msg, Response.sender, localIndex);
  writeU32(msg, Response.receiver, init.remoteIndex);

  const eph = generateKeyPair(random);
  msg.set(eph.publicKey, Response.ephemeral);
  let h = mixHash(init.hash, eph.publicKey);
  let ck = kdf1(init.chainKey, eph.publicKey);
  const ee = sharedSecret(eph.privateKey, init.remoteEphemeral);
  const se = sharedSecret(eph.privateKey, init.remoteStatic);
  wipe(eph.privateKey);
  if (!ee || !se) return void wipe(ck, ee, se);
  ck = mixKey(ck, ee);
  ck = mixKey(ck, se);
  wipe(ee, se);
  const [ck2, tau, key] = kdf3(ck, presharedKey ?? ZERO_KEY);
  wipe(ck);
  h = mixHash(h, tau);
  wipe(tau);
  const empty = sealToNew(aead, key, ZERO_NONCE, EMPTY, h);
  msg.set(empty, Response.empty);
  wipe(key, h);

  const [recv, send] = kdf2(ck2, EMPTY); // initiator sends with the first key, so we receive with it
  wipe(ck2);
  return { message: msg, keys: { send, recv } };
}

/** Initiator: consumes a response to `state` (mac1 already checked). Undefined when it does not authenticate. */
export function consumeResponse(
  aead: Aead,
  local: LocalIdentity,
  state: InitiatorState,
  presharedKey: Uint8Array | undefined,
  msg: Uint8Array,
): { remoteIndex: number; keys: SessionKeys } | undefined {
  const remoteEphemeral = msg.subarray(Response.ephemeral, Response.empty);
  let h = mixHash(state.hash, remoteEphemeral);
  // `state` stays intact: a forged response must not spoil the handshake the real one completes.
  let ck = kdf1(state.chainKey, remoteEphemeral);
  const ee = sharedSecret(state.ephemeralPrivate, remoteEphemeral);
  const se = sharedSecret(local.privateKey, remoteEphemeral);
  if (!ee || !se) return void wipe(ck, ee, se);
  ck = mixKey(ck, ee);
  ck = mixKey(ck, se);
  wipe(ee, se);
  const [ck2, tau, key] = kdf3(ck, presharedKey ?? ZERO_KEY);
  wipe(ck);
  h = mixHash(h, tau);
  wipe(tau);
  const empty = msg.subarray(Response.empty, Response.empty + TAG_LENGTH);
  const ok = openToNew(aead, key, ZERO_NONCE, empty, h);
  wipe(key, h);
  if (!ok) return void wipe(ck2);

  const [send, recv] = kdf2(ck2, EMPTY);
  wipe(ck2);
  return { remoteIndex: readU32(msg, Response.sender), keys: { send, recv } };
}

/** For checks at configuration time: does this public key produce a usable shared secret with us? */
export function staticSharedSecret(local: LocalIdentity, remoteStatic: Uint8Array): Uint8Array | undefined {
  return sharedSecret(local.privateKey, remoteStatic);
}
