// TURN REST credentials (draft-uberti-behave-turn-rest, coturn's `use-auth-secret`): the relay
// and whoever hands out credentials (Firezone's portal) share a secret; a credential is
// username = "<expiry unix seconds>:<user>", password = base64(HMAC-SHA1(secret, username)).
// The relay recomputes the password, so nothing per user is stored and credentials expire.

import { hmac } from "@noble/hashes/hmac.js";
import { sha1 } from "@noble/hashes/legacy.js";

export interface TurnCredentials {
  username: string;
  password: string;
}

export function turnRestCredentials(secret: string, user: string, expiresAtSeconds: number): TurnCredentials {
  const username = `${Math.floor(expiresAtSeconds)}:${user}`;
  const enc = new TextEncoder();
  const password = btoa(String.fromCharCode(...hmac(sha1, enc.encode(secret), enc.encode(username))));
  return { username, password };
}
