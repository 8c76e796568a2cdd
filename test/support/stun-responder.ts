// A minimal STUN server for tests: answers every Binding request with the source it came from
// (XOR-MAPPED-ADDRESS), which is all srflx discovery needs. Env: PORT (default 3478), HOST (bind
// address: a host with several interfaces must answer from the address it was asked at, or a NAT
// on the way back does not recognise the answer).
import { Attr, StunClass, StunMessage, StunMethod, StunWriter, parseStun } from "../../src/ice/stun.ts";

const socket = await Bun.udpSocket({
  hostname: process.env.HOST ?? "0.0.0.0",
  port: Number(process.env.PORT ?? 3478),
  socket: {
    data(s, buf, port, address) {
      const m = parseStun(new Uint8Array(buf));
      if (!(m instanceof StunMessage) || m.method !== StunMethod.binding || m.cls !== StunClass.request) return;
      s.send(new StunWriter(StunMethod.binding, StunClass.success, m.transactionId).address(Attr.XOR_MAPPED_ADDRESS, { address, port }).fingerprint().finish(), port, address);
    },
    error(_s, err) {
      process.stderr.write(`udp error: ${String(err)}\n`);
    },
  },
});
process.stdout.write(JSON.stringify({ kind: "listening", port: socket.port }) + "\n");
