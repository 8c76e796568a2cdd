// Request body limits, checked before anything reads the body or looks at credentials: the login
// form is a few short fields, every other form and JSON body a few kilobytes. Without them one
// unauthenticated POST could make the server buffer whatever it is sent (Bun allows 128 MiB).
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";

export const LOGIN_BODY_MAX = 4 * 1024;
export const BODY_MAX = 64 * 1024;

export function bodyLimits(): MiddlewareHandler {
  const tooLarge = (max: number): MiddlewareHandler => bodyLimit({
    maxSize: max,
    onError: (c) => c.json({ error: "payload_too_large", message: `body: larger than ${max} bytes` }, 413),
  });
  const login = tooLarge(LOGIN_BODY_MAX);
  const other = tooLarge(BODY_MAX);
  return (c, next) => (c.req.path === "/login" ? login(c, next) : other(c, next));
}
