// The gateway side of the ICE interop tests: our controlled IceAgent driven by a small Bun UDP shell
// (one socket, as the gateway has), run inside a test's namespace. JSON lines like werift-client.ts:
//   stdout {kind:"hello", ufrag, pwd, candidates}   after srflx discovery (when STUN_SERVER is set)
//   stdin  {kind:"remote", ufrag, pwd, candidates}  the client's credentials and candidates
//   stdout {kind:"nominated", ms, local, remote}    ms since the remote candidates arrived
//   stdout {kind:"event", event}                    every IceEvent, for the test's timeline
//   stdin  {kind:"send", text} → datagram over the selected pair; stdout {kind:"data", text} per non-STUN datagram
// Env: HOST_ADDRESSES=ip[,ip] (host candidates), PORT, STUN_SERVER=host:port,
// ICE_ROLE=controlling (our agent as a client runs it: it nominates; "nominated" then means selected).
import { IceAgent } from "../../src/ice/agent.ts";
import { localCandidate } from "../../src/ice/candidate.ts";
import { StunClass, StunMessage, StunMethod, StunWriter, looksLikeStun, parseStun } from "../../src/ice/stun.ts";
import { Logger, parseLogFilter } from "../../src/telemetry/log.ts";
import { linesOf } from "./lines.ts";

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");
const now = () => performance.now();

const hosts = (process.env.HOST_ADDRESSES ?? "127.0.0.1").split(",");
const log = new Logger(parseLogFilter(process.env.GLASSGATE_LOG ?? "info")).target("ice");
const role = process.env.ICE_ROLE === "controlling" ? "controlling" : "controlled";
const agent = new IceAgent({ local: { ufrag: randomText(8), pwd: randomText(24) }, now: now(), log, cid: "interop", role });

let stunTid: string | undefined;
let srflx: ((e: { address: string; port: number }) => void) | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let remoteAt = 0;

const socket = await Bun.udpSocket({
  hostname: "0.0.0.0",
  port: Number(process.env.PORT ?? 0),
  socket: {
    data(_s, buf, port, address) {
      const data = new Uint8Array(buf);
      const from = { address, port };
      if (looksLikeStun(data)) {
        const m = parseStun(data);
        if (m instanceof StunMessage && m.tid === stunTid && m.cls === StunClass.success && m.xorMappedAddress) {
          stunTid = undefined;
          srflx?.(m.xorMappedAddress);
          return;
        }
        agent.handleInput(data, from, { address: "0.0.0.0", port: socket.port }, now());
      } else {
        agent.noteTraffic(now());
        out({ kind: "data", text: new TextDecoder().decode(data), from: `${address}:${port}` });
      }
      drain();
    },
    // ICMP errors (a check to an unreachable candidate) surface here: expected, not fatal.
    error(_s, err) {
      process.stderr.write(`udp error: ${String(err)}\n`);
    },
  },
});

/**
 * Bun reports the ICMP error a previous datagram drew (a check towards an unreachable candidate) on
 * the next send, which then did not go out: retry, so one dead candidate does not eat the checks
 * of the others. (The gateway's real UDP shell needs the same care.)
 */
function send(data: Uint8Array, to: { address: string; port: number }): void {
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      socket.send(data, to.port, to.address);
      return;
    } catch (err) {
      process.stderr.write(`send to ${to.address}:${to.port}: ${String(err)}\n`);
    }
  }
}

function drain(): void {
  for (let t = agent.pollTransmit(); t; t = agent.pollTransmit()) send(t.data, t.to);
  for (let e = agent.pollEvent(); e; e = agent.pollEvent()) {
    out({ kind: "event", at: now() - remoteAt, event: e });
    if (e.kind === "nominated") {
      out({ kind: "nominated", ms: now() - remoteAt, local: `${e.pair.local.type} ${e.pair.local.address}:${e.pair.local.port}`, remote: `${e.pair.remote.type} ${e.pair.remote.address}:${e.pair.remote.port}` });
    }
  }
  if (timer) clearTimeout(timer);
  const at = agent.pollTimeout();
  if (at !== undefined) {
    timer = setTimeout(() => {
      agent.handleTimeout(now());
      drain();
    }, Math.max(0, at - now()));
  }
}

for (const h of hosts) agent.addLocalCandidate(localCandidate("host", h, socket.port), now());

const stun = process.env.STUN_SERVER;
if (stun) {
  const [address, port] = [stun.split(":")[0]!, Number(stun.split(":")[1])];
  const mapped = await new Promise<{ address: string; port: number } | undefined>((resolve) => {
    srflx = resolve;
    const tid = crypto.getRandomValues(new Uint8Array(12));
    const req = new StunWriter(StunMethod.binding, StunClass.request, tid).fingerprint().finish();
    stunTid = Array.from(tid, (b) => b.toString(16).padStart(2, "0")).join("");
    let tries = 0;
    const again = () => {
      if (stunTid === undefined) return;
      if (tries++ >= 20) return resolve(undefined);
      send(req, { address, port });
      setTimeout(again, 250);
    };
    again();
  });
  if (mapped) agent.addLocalCandidate(localCandidate("srflx", mapped.address, mapped.port, { address: hosts[0]!, port: socket.port }), now());
  else out({ kind: "warning", text: `no answer from STUN server ${stun}` });
}

out({ kind: "hello", ufrag: agent.local.ufrag, pwd: agent.local.pwd, candidates: agent.signalledCandidates(), port: socket.port });
drain();

for await (const line of linesOf(Bun.stdin.stream())) {
  const msg = JSON.parse(line) as { kind: string; ufrag?: string; pwd?: string; candidates?: string[]; text?: string };
  if (msg.kind === "remote") {
    remoteAt = now();
    agent.setRemoteCredentials({ ufrag: msg.ufrag!, pwd: msg.pwd! });
    for (const c of msg.candidates!) agent.addRemoteCandidateText(c, now());
    agent.handleTimeout(now());
  } else if (msg.kind === "send") {
    const route = agent.route;
    if (route) {
      agent.noteTraffic(now());
      send(new TextEncoder().encode(msg.text!), route.to);
    } else out({ kind: "warning", text: "send without a selected pair" });
  } else if (msg.kind === "close") {
    socket.close();
    process.exit(0);
  }
  drain();
}

function randomText(n: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => alphabet[b % alphabet.length]).join("");
}
