// A child process for the shipper's kill -9 test: a gateway's audit path as run.ts wires it —
// rows recorded in the SQLite Store of data dir argv[2], copied to PostgreSQL (argv[3]) by an
// AuditShipper ticking every few ms — printing {"committed": n} after each row's local commit,
// and {"shipped": n} as copies land, until it is killed.
import { AuditShipper } from "../../src/cluster/audit-shipper.ts";
import { PgStore } from "../../src/store/pg-store.ts";
import { Store } from "../../src/store/index.ts";

const local = Store.open(process.argv[2]!);
const pg = await PgStore.open(process.argv[3]!, local.gid);
const shipper = new AuditShipper({ local, pg, gid: local.gid, batch: 50 });
let shipped = 0;
setInterval(() => {
  shipper.shipOnce().then((n) => {
    shipped += n;
    if (n) console.log(JSON.stringify({ shipped }));
  }, () => undefined);
}, 5);
console.log(JSON.stringify({ ready: true, gid: local.gid }));
for (let n = 1; ; n++) {
  local.audit.record({ actor: "gateway", action: "connection.established", subject: `row-${n}`, cid: n });
  console.log(JSON.stringify({ committed: n }));
  // Let the shipper's ticks run between writes, as the gateway's event loop does.
  if (n % 5 === 0) await Bun.sleep(1);
}
