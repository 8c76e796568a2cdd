// A throwaway PostgreSQL cluster for tests: initdb in a temp dir of its own, started by pg_ctl on a
// private port and a unix socket in that dir, stopped (immediate) and removed afterwards. Nothing
// system-wide is touched. PostgreSQL refuses to run as root, so the cluster runs as the `postgres`
// user (Debian's package creates it) through `runuser`, which needs root — hence the skip otherwise.
import { spawnSync } from "bun";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRoot } from "./netns.ts";

const OS_USER = "postgres";

/** Where initdb/pg_ctl live: pg_config's answer, else the newest /usr/lib/postgresql/<v>/bin. */
export function postgresBinDir(): string | undefined {
  const byConfig = spawnSync(["sh", "-c", "pg_config --bindir"], { stdout: "pipe", stderr: "pipe" });
  const dir = byConfig.exitCode === 0 ? byConfig.stdout.toString().trim() : "";
  // Debian's /usr/bin/pg_config (libpq-dev) may answer /usr/bin, where no initdb is: check.
  if (dir && existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl"))) return dir;
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = join(root, v, "bin");
    if (existsSync(join(bin, "initdb")) && existsSync(join(bin, "pg_ctl"))) return bin;
  }
  return undefined;
}

function osUserExists(user: string): boolean {
  return spawnSync(["id", "-u", user], { stdout: "pipe", stderr: "pipe" }).exitCode === 0;
}

/** Why a PostgreSQL test cannot run here, or undefined when it can. */
export function postgresSkipReason(): string | undefined {
  if (!isRoot()) return "needs root (runs PostgreSQL as the postgres user via runuser); CI runs it as root";
  if (!postgresBinDir()) return "PostgreSQL server binaries not found (apt-get install postgresql)";
  if (!osUserExists(OS_USER)) return `no '${OS_USER}' OS user (apt-get install postgresql creates it)`;
  return undefined;
}

function run(cmd: string[]): string {
  const r = spawnSync(["runuser", "-u", OS_USER, "--", ...cmd], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${r.stderr.toString().trim()} ${r.stdout.toString().trim()}`);
  return r.stdout.toString();
}

export class TestPostgres {
  #stopped = false;

  private constructor(
    readonly dir: string,
    readonly bin: string,
    readonly port: number,
  ) {}

  /** The socket directory: connections go through it, never through TCP. */
  get socketDir(): string {
    return this.dir;
  }

  get dataDir(): string {
    return join(this.dir, "data");
  }

  /** A URL for the superuser on database `db`, through the unix socket (libpq's `?host=/dir` form). */
  url(db = "postgres"): string {
    return `postgres://${OS_USER}@localhost:${this.port}/${db}?host=${encodeURIComponent(this.socketDir)}`;
  }

  /** Creates database `name` (fresh per test, so tests do not see each other's rows). */
  createDatabase(name: string): string {
    run([join(this.bin, "createdb"), "-h", this.socketDir, "-p", String(this.port), name]);
    return this.url(name);
  }

  static start(): TestPostgres {
    const bin = postgresBinDir();
    if (!bin) throw new Error("PostgreSQL binaries not found");
    const dir = mkdtempSync(join(tmpdir(), "gg-pg-"));
    const ids = spawnSync(["id", "-u", OS_USER], { stdout: "pipe" }).stdout.toString().trim();
    const gid = spawnSync(["id", "-g", OS_USER], { stdout: "pipe" }).stdout.toString().trim();
    chownSync(dir, Number(ids), Number(gid));
    // A random port only names the socket file (no TCP listener), so collisions with other
    // tests are limited to two runs picking the same number in the same dir — which cannot happen.
    const port = 20000 + Math.floor(Math.random() * 40000);
    const pg = new TestPostgres(dir, bin, port);
    try {
      run([join(bin, "initdb"), "-D", pg.dataDir, "-U", OS_USER, "--auth=trust", "-E", "UTF8", "--no-sync"]);
      pg.#start();
    } catch (err) {
      pg.#remove();
      throw new Error("starting a test PostgreSQL", { cause: err });
    }
    return pg;
  }

  #start(): void {
    const opts = `-c listen_addresses='' -c unix_socket_directories='${this.dir}' -p ${this.port} -c fsync=off`;
    run([join(this.bin, "pg_ctl"), "-D", this.dataDir, "-l", join(this.dir, "server.log"), "-o", opts, "-w", "-t", "60", "start"]);
  }

  /** An outage: the server stops (immediate, as a crash would) and keeps its data for `resume()`. */
  pause(): void {
    run([join(this.bin, "pg_ctl"), "-D", this.dataDir, "-m", "immediate", "-w", "stop"]);
  }

  /** Starts the server again after `pause()`, on the same socket and data. */
  resume(): void {
    this.#start();
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      run([join(this.bin, "pg_ctl"), "-D", this.dataDir, "-m", "immediate", "-w", "stop"]);
    } finally {
      this.#remove();
    }
  }

  #remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
