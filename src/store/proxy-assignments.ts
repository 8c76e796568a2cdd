// Persistence for DNS-resource proxy addresses (see gateway/dns-nat.ts).
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

  all(): SavedAssignment[] {
    return this.db.select().from(dnsProxyAssignments).all().map((r) => ({ domain: r.domain, slot: r.slot, v4: JSON.parse(r.v4), v6: JSON.parse(r.v6) }));
  }

  save(a: SavedAssignment): void {
    this.db.insert(dnsProxyAssignments).values({ domain: a.domain, slot: a.slot, v4: JSON.stringify(a.v4), v6: JSON.stringify(a.v6) }).onConflictDoNothing().run();
  }
}
