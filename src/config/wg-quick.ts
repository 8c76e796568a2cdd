// Reads wg-quick style files into sections of (key, value, line). Only syntax lives here; what the
// values mean is checked by schema.ts so each error can name file, line, key and value.

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
        throw new ConfigError(file, line, undefined, `unknown section "[${name}]" (expected [Interface], [Peer] or [Resource])`);
      }
      current = { name, line, entries: [] };
      sections.push(current);
      return;
    }
    const eq = content.indexOf("=");
    if (eq <= 0) throw new ConfigError(file, line, undefined, `"${content}" is not "Key = Value"`);
    if (!current) throw new ConfigError(file, line, undefined, "setting before any [Interface] or [Peer] section");
    current.entries.push({ key: content.slice(0, eq).trim(), value: content.slice(eq + 1).trim(), line });
  });
  return sections;
}
