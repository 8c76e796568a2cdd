// Reading a test's child processes line by line: JSON lines parsed (others kept as `{text}`), stderr
// kept apart, and a `next` that waits for a line and says what the process printed when it did not come.
import type { Subprocess } from "bun";
import { eachLine } from "./lines.ts";
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
  const parse = (l: string) => {
    try {
      lines.push(JSON.parse(l) as Line);
    } catch {
      lines.push({ text: l });
    }
  };
  void eachLine(json === "stdout" ? p.stdout : p.stderr, parse);
  void eachLine(json === "stdout" ? p.stderr : p.stdout, (l) => other.push(l));
  const next = async (pred: (l: Line) => boolean, what: string, ms = 20_000) => {
    try {
      return await waitFor(`${what} from ${name}`, () => lines.find(pred), ms);
    } catch (err) {
      throw new Error(`${String(err)}; ${name} said: ${JSON.stringify(lines.slice(-15))}; other: ${other.slice(-10).join(" | ")}`);
    }
  };
  return { lines, other, next };
}
