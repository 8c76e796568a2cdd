// Reading a test's child processes line by line: JSON lines parsed (others kept as `{text}`), stderr
// kept apart, and a `next` that waits for a line and says what the process printed when it did not come.
import type { Subprocess } from "bun";
import { waitFor } from "./netns.ts";

export type Line = Record<string, unknown>;

export interface Watched {
  /** Lines of the stream given as `json` (stdout by default), parsed. */
  lines: Line[];
  /** The other stream's lines, as text. */
  other: string[];
  next(pred: (l: Line) => boolean, what: string, ms?: number): Promise<Line>;
}

/** `json`: which stream carries the JSON lines (the gateway logs to stderr, the headless client prints events on stdout). */
export function watch(p: Subprocess<"ignore", "pipe", "pipe">, name: string, json: "stdout" | "stderr" = "stdout"): Watched {
  const lines: Line[] = [];
  const other: string[] = [];
  const read = async (s: ReadableStream<Uint8Array>, on: (l: string) => void) => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of s) {
      buf += dec.decode(chunk);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (l.trim()) on(l);
      }
    }
  };
  const parse = (l: string) => {
    try {
      lines.push(JSON.parse(l) as Line);
    } catch {
      lines.push({ text: l });
    }
  };
  void read(json === "stdout" ? p.stdout : p.stderr, parse);
  void read(json === "stdout" ? p.stderr : p.stdout, (l) => other.push(l));
  const next = async (pred: (l: Line) => boolean, what: string, ms = 20_000) => {
    try {
      return await waitFor(`${what} from ${name}`, () => lines.find(pred), ms);
    } catch (err) {
      throw new Error(`${String(err)}; ${name} said: ${JSON.stringify(lines.slice(-15))}; other: ${other.slice(-10).join(" | ")}`);
    }
  };
  return { lines, other, next };
}
