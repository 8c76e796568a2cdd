// Reads wg-quick style files into sections of (key, value, line). Only syntax lives here; what the
// values mean is checked by schema.ts so each error can name file, line, key and value.
import { statSync } from "node:fs";

export interface Entry {
  key: string;
  value: string;
  line: number;
}

export interface Section {
  name: "Interface" | "Peer" | "Resource";
  line: number;
  entries: Entry[];
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly key: string | undefined,
    readonly problem: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ""}: ${key ? `${key}: ` : ""}${problem}`);
    this.name = "ConfigError";
  }
}

/**
 * A config file larger than this is refused before it is read: 16 MiB holds ~50 000 peers with
 * comments, far beyond a gateway's use, while `check-config /dev/zero` or a runaway generator
 * would otherwise take all memory.
 */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** `value` quoted for an error message, at most `max` characters, control characters escaped. */
export function quoteValue(value: string, max = 80): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
}

/**
 * Reads a config file's text: a regular file of at most MAX_CONFIG_BYTES, else a ConfigError
 * naming the file and the limit (a FIFO or device would never end, or end far too late).
 */
export async function readConfigText(file: string): Promise<string> {
  const st = statSync(file);
  if (!st.isFile()) throw new ConfigError(file, undefined, undefined, "is not a regular file");
  const tooBig = () => new ConfigError(file, undefined, undefined, `is larger than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB (${st.size} bytes): not a gateway config`);
  if (st.size > MAX_CONFIG_BYTES) throw tooBig();
  // Read at most one byte past the limit: the file may have grown since stat().
  const bytes = await Bun.file(file).slice(0, MAX_CONFIG_BYTES + 1).bytes();
  if (bytes.length > MAX_CONFIG_BYTES) throw tooBig();
  return new TextDecoder().decode(bytes);
}

export function readSections(text: string, file: string): Section[] {
  const sections: Section[] = [];
  let current: Section | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const content = raw.replace(/[#;].*$/, "").trim();
    if (!content) return;
    const header = /^\[(.*)\]$/.exec(content);
    if (header) {
      const name = header[1]!.trim();
      if (name !== "Interface" && name !== "Peer" && name !== "Resource") {
        throw new ConfigError(file, line, undefined, `unknown section ${quoteValue(`[${name}]`)} (expected [Interface], [Peer] or [Resource])`);
      }
      current = { name, line, entries: [] };
      sections.push(current);
      return;
    }
    const eq = content.indexOf("=");
    if (eq <= 0) throw new ConfigError(file, line, undefined, `${quoteValue(content)} is not "Key = Value"`);
    if (!current) throw new ConfigError(file, line, undefined, "setting before any [Interface] or [Peer] section");
    current.entries.push({ key: content.slice(0, eq).trim(), value: content.slice(eq + 1).trim(), line });
  });
  return sections;
}
