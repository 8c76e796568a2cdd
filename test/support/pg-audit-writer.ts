// A child process for the kill -9 test: records audit rows on PostgreSQL one after another and
// prints {"committed": n} once each insert has returned (committed), until it is killed.
import { PgStore } from "../../src/store/pg-store.ts";

const store = await PgStore.open(process.argv[2]!, crypto.randomUUID());
console.log(JSON.stringify({ ready: true }));
for (let n = 1; ; n++) {
  await store.audit.record({ actor: "gateway", action: "connection.established", subject: `row-${n}`, cid: n });
  console.log(JSON.stringify({ committed: n }));
}
