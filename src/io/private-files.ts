// Files that hold secrets (the database with client private and preshared keys, the generated
// admin token, the gateway's wg-quick file): created owner-only whatever the umask, and checked at
// every start, because a file made by an older version or copied in by hand may be readable by all.
// The mode is set explicitly with fchmod on the open descriptor: `open(…, 0o600)` alone would be
// trimmed by the umask (harmless here) but never widened back, and an existing file keeps its mode.
import { chmodSync, closeSync, existsSync, fchmodSync, mkdirSync, openSync, readdirSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/** A secret file or directory found open to group or others at start. */
export interface LoosePermissions {
  path: string;
  /** What it had, e.g. "0644". */
  mode: string;
  /** What it has now: "0600" when we tightened it, else the old mode (not ours, or chmod failed). */
  now: string;
  /** Why it was left as it was. */
  reason?: string;
}

export type OnLoose = (found: LoosePermissions) => void;

const octal = (m: number) => `0${(m & 0o777).toString(8).padStart(3, "0")}`;

/** Logs a LoosePermissions finding as one warn line (the shape every caller uses). */
export function looseLogFields(f: LoosePermissions): Record<string, string> {
  return { path: f.path, mode: f.mode, now: f.now, ...(f.reason ? { reason: f.reason } : {}) };
}

/**
 * Makes `path` readable by its owner only if it is not: chmod when we own it, else just report.
 * Returns false when the path does not exist.
 */
export function tightenPrivate(path: string, want: number, onLoose?: OnLoose, opts: { reportOnly?: string } = {}): boolean {
  let st;
  try {
    st = statSync(path);
  } catch {
    return false;
  }
  const mode = st.mode & 0o777;
  if ((mode & ~want & 0o077) === 0) return true; // nothing for group or others: fine as it is
  const found: LoosePermissions = { path, mode: octal(mode), now: octal(mode) };
  const uid = process.geteuid?.();
  if (uid !== undefined && st.uid !== uid) {
    found.reason = `owned by uid ${st.uid}, not us (uid ${uid})`;
  } else if (opts.reportOnly) {
    found.reason = opts.reportOnly;
  } else {
    try {
      // Keep the owner's bits, drop everything for group and others.
      chmodSync(path, mode & want);
      found.now = octal(mode & want);
    } catch (err) {
      found.reason = `chmod failed: ${(err as Error).message}`;
    }
  }
  onLoose?.(found);
  return true;
}

/**
 * Creates the directory 0700 (missing parents get the usual mode), or tightens an existing one —
 * unless it holds anything `ours` does not claim: a data dir pointed at /var/lib or a home
 * directory is reported, never chmod-ed under other programs' feet.
 */
export function ensurePrivateDir(path: string, onLoose?: OnLoose, ours: (name: string) => boolean = () => true): void {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    mkdirSync(path, { mode: PRIVATE_DIR_MODE });
    chmodSync(path, PRIVATE_DIR_MODE); // mkdir's mode passes through the umask: set it exactly
    return;
  }
  const foreign = readdirSync(path).filter((n) => !ours(n));
  const reportOnly = foreign.length ? `shared with other files (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", …" : ""}): not changed` : undefined;
  tightenPrivate(path, PRIVATE_DIR_MODE, onLoose, { reportOnly });
}

/** Opens (creating when missing) with the mode (0600 unless told) set on the descriptor, so no window where it is wider. */
function openPrivate(path: string, flags: string, mode = PRIVATE_FILE_MODE): number {
  const fd = openSync(path, flags, mode);
  try {
    fchmodSync(fd, mode);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/** Creates an empty 0600 file when missing; an existing one is tightened instead. */
export function ensurePrivateFile(path: string, onLoose?: OnLoose): void {
  if (tightenPrivate(path, PRIVATE_FILE_MODE, onLoose)) return;
  closeSync(openPrivate(path, "a"));
}

/**
 * Writes a secret file with mode 0600 (or `mode`, e.g. 0640 for a file one reader group shares).
 * `exclusive` fails if it exists (EEXIST) instead of replacing it; a replaced file gets the mode
 * too, whatever mode it had.
 */
export function writePrivateFile(path: string, data: string | Uint8Array, opts: { exclusive?: boolean; mode?: number } = {}): void {
  const fd = openPrivate(path, opts.exclusive ? "wx" : "w", opts.mode);
  try {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
  } finally {
    closeSync(fd);
  }
}
