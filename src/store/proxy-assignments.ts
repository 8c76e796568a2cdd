// Persistence for DNS-resource proxy addresses (see gateway/dns-nat.ts).
import { inArray } from "drizzle-orm";
import type { Db } from "./database.ts";
import { dnsProxyAssignments } from "./schema.ts";

export interface SavedAssignment {
  domain: string;
  slot: number;
  v4: string[];
  v6: string[];
}

export class ProxyAssignments {
  constructor(private readonly db: Db) {}

  /** Every saved row; one whose lists do not parse comes back with the raw text as its only address, for restore() to report and skip. */
  all(): SavedAssignment[] {
    const list = (text: string): string[] => {
      try {
        return JSON.parse(text);
      } catch {
        return [`unreadable: ${text.slice(0, 40)}`];
      }
    };
    return this.db.select().from(dnsProxyAssignments).all().map((r) => ({ domain: r.domain, slot: r.slot, v4: list(r.v4), v6: list(r.v6) }));
  }

  save(a: SavedAssignment): void {
    this.db.insert(dnsProxyAssignments).values({ domain: a.domain, slot: a.slot, v4: JSON.stringify(a.v4), v6: JSON.stringify(a.v6) }).onConflictDoNothing().run();
  }

  /** Reclaimed names: their rows go (and their slots may be saved again for other names). */
  remove(domains: string[]): void {
    // SQLite caps bound parameters per statement: delete in chunks.
    for (let i = 0; i < domains.length; i += 500) this.db.delete(dnsProxyAssignments).where(inArray(dnsProxyAssignments.domain, domains.slice(i, i + 500))).run();
  }
}
