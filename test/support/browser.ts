// Debian's Chromium for the admin UI's browser tests, launched inside the gateway's network
// namespace (the admin listens on that namespace's loopback) with the flags this machine needs:
// without --disable-background-networking Chromium's own connections are refused by the closed
// network, many at a time. Pages report any Content-Security-Policy violation on their console.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];
const CSP_VIOLATION = /Content Security Policy|Refused to /i;
const SHOTS = process.env.GLASSGATE_SCREENSHOTS;

/** Chromium run by `ip netns exec netns` (a wrapper script in `dir`, since playwright takes one executable). */
export async function launchChromiumIn(netns: string, dir: string): Promise<Browser> {
  const wrapper = join(dir, "chromium-in-netns.sh");
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${netns} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return chromium.launch({ executablePath: wrapper, args: ARGS });
}

/** Collects the CSP violations a page reports into `violations`, and its uncaught errors into `errors` (or the same list). */
export function watchPage(page: Page, violations: string[], errors: string[] = violations): void {
  page.on("console", (m) => {
    if (CSP_VIOLATION.test(m.text())) violations.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
}

/** A full-page screenshot into GLASSGATE_SCREENSHOTS when it is set (docs/ is refreshed that way). */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
}
