// A helper process speaking JSON lines (the ICE interop tests' gateway and client shells), started
// in a namespace and ended by its own PID.
import { spawn, type Subprocess } from "bun";
import { eachLine } from "./lines.ts";
import { type Netns, waitFor } from "./netns.ts";

const BUN = process.execPath;
const SUPPORT = import.meta.dir;

export type Line = { kind: string; [k: string]: unknown };

/** A helper process speaking JSON lines, started in a namespace and ended by its PID. */
export class JsonPeer {
  readonly lines: Line[] = [];
  readonly stderr: string[] = [];
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;

  constructor(
    ns: Netns,
    readonly name: string,
    script: string,
    env: Record<string, string>,
  ) {
    this.proc = spawn(["ip", "netns", "exec", ns.name, BUN, `${SUPPORT}/${script}`], { env: { ...process.env, ...env }, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    void eachLine(this.proc.stdout, (l) => this.lines.push(JSON.parse(l) as Line));
    void eachLine(this.proc.stderr, (l) => this.stderr.push(l));
  }

  send(o: unknown): void {
    this.proc.stdin.write(JSON.stringify(o) + "\n");
    this.proc.stdin.flush();
  }

  async next(kind: string, timeoutMs = 20_000, where: (l: Line) => boolean = () => true): Promise<Line> {
    try {
      return await waitFor(`"${kind}" from ${this.name}`, () => this.lines.find((l) => l.kind === kind && where(l)), timeoutMs);
    } catch (err) {
      // What the process said by then, not when the wait began.
      throw new Error(`${String(err)}; its lines: ${this.lines.map((l) => l.kind).join(",")}; stderr: ${this.stderr.slice(-8).join(" | ")}`);
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) this.proc.kill("SIGTERM");
    await Promise.race([this.proc.exited, Bun.sleep(2000)]);
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}

