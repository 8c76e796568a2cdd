// `bun tools/portal-probe.ts`: a gateway's portal connection and nothing else — the same parts
// `glassgate up --portal` will compose (settings → login URL → User-Agent → PortalSocket over the
// sans-IO channel), with every event logged and each authorize_flow answered with flow_authorized.
// For demos against the dev portal and for checking a real portal's messages against our schemas.
// Exits with the channel's fatal exit code (2: token refused or expired; 1: join rejected, gave up).
//
//   FIREZONE_API_URL=http://127.0.0.1:8081 FIREZONE_TOKEN=gateway-token-1 FIREZONE_ID=gw-1 bun tools/portal-probe.ts
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import pkg from "../package.json" with { type: "json" };
import { encodeKey, generateKeyPair } from "../src/crypto/x25519.ts";
import { PortalSocket } from "../src/io/portal-socket.ts";
import { readSystemFacts } from "../src/io/system-facts.ts";
import { EXIT_BAD_CONFIG, gatewayChannel, loginUrl, portalSettings, userAgent, type GatewayEgress, type GatewayIngress } from "../src/portal/index.ts";
import { Logger } from "../src/telemetry/log.ts";

const log = new Logger().target("portal");
let settings;
try {
  settings = portalSettings(process.env, (p) => readFileSync(p, "utf8"));
} catch (err) {
  console.error((err as Error).message);
  process.exit(EXIT_BAD_CONFIG);
}
const { publicKey } = generateKeyPair();
const s = settings;
const socket: PortalSocket<GatewayIngress, GatewayEgress> = new PortalSocket({
  channel: gatewayChannel({ random: Math.random }),
  url: () => loginUrl({ apiUrl: s.apiUrl, token: s.token, id: s.id ?? hostname(), name: s.name ?? hostname(), publicKey: encodeKey(publicKey) }),
  userAgent: userAgent(readSystemFacts(), "gateway", pkg.version),
  log,
  onEvent(ev) {
    if (ev.kind === "message") {
      log.info("portal message", { event: ev.message.event, payload: JSON.stringify(ev.message.payload).slice(0, 900) });
      if (ev.message.event === "authorize_flow") socket.send({ event: "flow_authorized", payload: { ref: ev.message.payload.ref } });
    }
    if (ev.kind === "fatal") {
      console.error(`portal: ${ev.message}`);
      process.exit(ev.exitCode);
    }
  },
});
socket.start();
const stop = () => {
  socket.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
