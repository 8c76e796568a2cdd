// Which gateways serve a peer when several share one PostgreSQL database. The peers table keeps it
// as text (`served_by`): comma-separated gateway ids, or null for "every gateway" — so a peer made
// before anyone chose (and every standalone peer) is served everywhere, and a gateway added later
// serves it without touching any row. An empty choice also means every gateway: a peer served by
// none would be a disabled peer in disguise, and `enabled` already says that.

/** A gateway id as store/gateway-id.ts makes it (lowercase UUID). */
const GID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isGid(text: string): boolean {
  return GID.test(text);
}

/**
 * The gids in a `served_by` value, or null for every gateway (null, empty, only commas).
 * Entries are trimmed and lowercased; an entry that is not a gid is kept out (a hand-edited row must
 * not make a gateway serve it by accident — validation refuses such input before it is stored).
 */
export function parseServedBy(text: string | null | undefined): string[] | null {
  if (!text) return null;
  const gids = [...new Set(text.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== ""))];
  if (gids.length === 0) return null;
  return gids.filter(isGid);
}

/** The column value for a choice of gateways: null when none is named (every gateway). */
export function formatServedBy(gids: readonly string[] | null | undefined): string | null {
  if (!gids) return null;
  const unique = [...new Set(gids.map((g) => g.trim().toLowerCase()).filter((g) => g !== ""))];
  return unique.length === 0 ? null : unique.join(",");
}

/** Whether gateway `gid` serves the row: every gateway when `servedBy` is null. */
export function servesPeer(row: { servedBy: string | null }, gid: string): boolean {
  const gids = parseServedBy(row.servedBy);
  return gids === null || gids.includes(gid.toLowerCase());
}
