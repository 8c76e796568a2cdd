// The login form's CSRF token. A session's token protects every later mutation, but the login
// form comes before any session: without its own token a foreign page could log the browser into
// an account of the attacker's choosing (login CSRF). Double submit: GET /login sets a random
// token in an HttpOnly SameSite=Strict cookie and in a hidden field; POST /login must bring both,
// equal (compared in constant time). A foreign site can neither read the cookie nor set it.
import type { Context } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { timingSafeEqual } from "node:crypto";

export const LOGIN_CSRF_COOKIE = "gg_login_csrf";
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The token for the login form: the browser's current one, or a new one set as a cookie. */
export function loginCsrfToken(c: Context, secure: boolean): string {
  const current = getCookie(c, LOGIN_CSRF_COOKIE);
  if (current && TOKEN.test(current)) return current;
  const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  setCookie(c, LOGIN_CSRF_COOKIE, token, { httpOnly: true, sameSite: "Strict", secure, path: "/login", maxAge: 12 * 3600 });
  return token;
}

/** Does the posted form carry the same token as the cookie? */
export function loginCsrfValid(c: Context, field: unknown): boolean {
  const cookie = getCookie(c, LOGIN_CSRF_COOKIE);
  return typeof field === "string" && cookie !== undefined && TOKEN.test(cookie) && constantTimeEqual(field, cookie);
}
