// Asks SERVER (port 53) for NAME of TYPE (A or AAAA) and prints JSON {rcode, addresses}.
import dgram from "node:dgram";
import { formatIp } from "../../src/ip/address.ts";
import { answerAddresses, buildQuery, TYPE_A, TYPE_AAAA } from "../../src/gateway/dns-message.ts";

const [server, name, type] = process.argv.slice(2);
const sock = dgram.createSocket("udp4");
const timer = setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: "timeout" }) + "\n");
  process.exit(0);
}, 4000);
sock.on("message", (msg) => {
  clearTimeout(timer);
  const { rcode, addresses } = answerAddresses(new Uint8Array(msg));
  process.stdout.write(JSON.stringify({ rcode, addresses: addresses.map(formatIp) }) + "\n");
  sock.close();
});
sock.send(buildQuery(0x4242, name!, type === "AAAA" ? TYPE_AAAA : TYPE_A), 53, server!);
