// A child process for the clustered-gateway test: `glassgate up` as cli.ts composes it, with the
// PostgreSQL store passed in (runStandalone's `pg`), run inside a namespace the test made.
// argv: data dir, DATABASE_URL, admin port. Prints {"ready": …} on stdout once up; logs go to
// stderr as JSON lines; SIGTERM stops it as the CLI does (then closes the PostgreSQL pool).
import { mkdirSync } from "node:fs";
import { encodeKey, generatePrivateKey } from "../../src/crypto/x25519.ts";
import { parseConfig } from "../../src/config/index.ts";
import { runStandalone } from "../../src/standalone/run.ts";
import { gatewayId } from "../../src/store/index.ts";
import { PgStore } from "../../src/store/pg-store.ts";
import { fanOut, LogRing } from "../../src/telemetry/log-ring.ts";
import { Logger, parseLogFilter, stderrSink } from "../../src/telemetry/log.ts";

const [dataDir, url, adminPort] = process.argv.slice(2) as [string, string, string];
mkdirSync(dataDir, { recursive: true, mode: 0o700 });
const pg = await PgStore.open(url, gatewayId(dataDir));
const logs = new LogRing(1000);
const logger = new Logger(parseLogFilter("info"), fanOut(stderrSink, logs.sink));
const config = parseConfig(`[Interface]\nPrivateKey = ${encodeKey(generatePrivateKey())}\nListenPort = 0\nAddress = 10.77.0.1/24\n`, "pg-gateway.conf");
const gw = await runStandalone({
  config, logs, logger, pg,
  interfaceName: "ggpg0", listenPort: 0, admin: { hostname: "127.0.0.1", port: Number(adminPort) },
  adminToken: "cluster-test-token", dataDir, keepDefaultBuffers: true, publicEndpoint: "gw.example:52625",
});
console.log(JSON.stringify({ ready: true, admin: gw.adminUrl, gid: gw.parts.gid }));
process.once("SIGTERM", async () => {
  await gw.shutdown("SIGTERM");
  await pg.close();
  console.log(JSON.stringify({ stopped: true }));
  process.exit(0);
});
