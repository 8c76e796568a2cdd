// An expired session seen by htmx: a live table's poll must send the whole page to the login form
// (and back to that page afterwards), never swap the login page into the table.
import { describe, expect, test } from "bun:test";
import { BASE, setup } from "../testing.ts";

describe("htmx requests without a session", () => {
  const poll = (path: string, headers: Record<string, string>) => setup().app.request(`${BASE}${path}`, { headers: { accept: "text/html", "hx-request": "true", ...headers } });

  test("a poll of a live fragment gets 401 with HX-Redirect to the login, next= the page the user is on", async () => {
    const r = await poll("/connections/3428714/live", { "hx-current-url": `${BASE}/connections/3428714?x=1` });
    expect(r.status).toBe(401);
    expect(r.headers.get("location")).toBeNull();
    expect(r.headers.get("hx-redirect")).toBe(`/login?next=${encodeURIComponent("/connections/3428714?x=1")}`);
    expect(await r.text()).toBe("");
  });

  test("without HX-Current-URL next= is the requested path", async () => {
    const r = await poll("/connections/rows", {});
    expect(r.status).toBe(401);
    expect(r.headers.get("hx-redirect")).toBe(`/login?next=${encodeURIComponent("/connections/rows")}`);
  });

  test("a current page on another origin is not a place to return to: next= is /", async () => {
    for (const current of ["https://evil.example/phish", `${BASE}//evil.example`, "/\\evil.example"]) {
      const r = await poll("/connections/rows", { "hx-current-url": current });
      expect(r.headers.get("hx-redirect")).toBe(`/login?next=${encodeURIComponent("/")}`);
    }
  });

  test("a plain page load still gets the 302 to the login", async () => {
    const r = await setup().app.request(`${BASE}/connections`, { headers: { accept: "text/html" } });
    expect(r.status).toBe(302);
    expect(r.headers.get("location")).toBe("/login?next=%2Fconnections");
  });
});
