// The gateway's own stable id (gid): a UUID made at first start and kept in the data dir beside
// the database, so logs, traces (service.instance.id), metrics and Sentry name the same gateway
// across restarts. A file rather than a row: a database shared by many gateways (Postgres) must
// not hand them all one id, while each gateway has its own data dir. Owner-only like its neighbours.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tightenPrivate, PRIVATE_FILE_MODE, writePrivateFile, type OnLoose } from "../io/private-files.ts";

export const GATEWAY_ID_FILE = "gateway-id";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The gateway id kept in `dataDir` (which must exist: Store.open makes it), created on first call.
 * A file that holds anything but a UUID is an error naming the file and what it holds: replacing
 * it silently would split one gateway's history in two.
 */
export function gatewayId(dataDir: string, onLoose?: OnLoose): string {
  const file = join(dataDir, GATEWAY_ID_FILE);
  if (!tightenPrivate(file, PRIVATE_FILE_MODE, onLoose)) {
    try {
      writePrivateFile(file, `${crypto.randomUUID()}\n`, { exclusive: true });
    } catch (err) {
      // Another process made it first: theirs stands (read below).
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new Error(`creating ${file}`, { cause: err });
    }
  }
  const text = readFileSync(file, "utf8").trim().toLowerCase();
  if (!UUID.test(text)) throw new Error(`${file}: "${text.slice(0, 64)}" is not a gateway id (a UUID); restore it or delete the file for a new id`);
  return text;
}
