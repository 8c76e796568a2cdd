// A resolver whose answer rotates, like round-robin DNS or a load balancer's pool: listens on
// HOST:53 (UDP) and answers each A query for NAME with the next of ADDRS; AAAA gets an empty
// NOERROR, other names NXDOMAIN. Prints "listening", then one JSON line per answer.
import dgram from "node:dgram";
import { parseIp } from "../../src/ip/address.ts";
import { buildAnswer, parseQuery, RCODE_NXDOMAIN, TYPE_A } from "../../src/gateway/dns-message.ts";

const [host, name, ...addrs] = process.argv.slice(2);
const sock = dgram.createSocket("udp4");
let next = 0;
sock.on("message", (msg, rinfo) => {
  const query = new Uint8Array(msg);
  const q = parseQuery(query);
  if (typeof q === "string") return;
  let answer: string[] = [];
  let rcode = 0;
  if (q.name !== name!.toLowerCase()) rcode = RCODE_NXDOMAIN;
  else if (q.qtype === TYPE_A) answer = [addrs[next++ % addrs.length]!];
  sock.send(buildAnswer(query, q, answer.map((a) => parseIp(a)!), 1, rcode), rinfo.port, rinfo.address);
  process.stdout.write(JSON.stringify({ name: q.name, qtype: q.qtype, answer }) + "\n");
});
sock.bind(53, host!, () => process.stdout.write("listening\n"));
