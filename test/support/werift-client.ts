// The client side of the ICE interop tests: werift-ice (an independent TypeScript ICE agent) as the
// *controlling* agent, as a Firezone client would be. Run inside a test's namespace; talks JSON lines:
//   stdout {kind:"hello", ufrag, pwd, candidates}            after gathering
//   stdin  {kind:"remote", ufrag, pwd, candidates}           the gateway's credentials and candidates
//   stdout {kind:"connected", ms, local, remote}             nominated (ms since the remote arrived)
//   stdin  {kind:"send", text} → datagram on the selected pair; stdout {kind:"data", text} per datagram in
// Env: STUN_SERVER=host:port (srflx), HOST_ADDRESS=ip (an extra host address, e.g. 127.0.0.1),
// ICE_ROLE=controlled (werift as the controlled side, against our controlling agent).
import { Candidate, Connection } from "werift-ice";

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");

const stun = process.env.STUN_SERVER;
const extra = process.env.HOST_ADDRESS;
const conn = new Connection(process.env.ICE_ROLE !== "controlled", {
  useIpv6: false,
  ...(stun ? { stunServer: [stun.split(":")[0]!, Number(stun.split(":")[1])] as [string, number] } : {}),
  ...(extra ? { additionalHostAddresses: [extra] } : {}),
});
conn.onData.subscribe((data) => out({ kind: "data", text: data.toString() }));
conn.stateChanged.subscribe((state) => out({ kind: "state", state }));

await conn.gatherCandidates();
out({ kind: "hello", ufrag: conn.localUsername, pwd: conn.localPassword, candidates: conn.localCandidates.map((c) => "candidate:" + c.toSdp()) });

const decoder = new TextDecoder();
let pending = "";
for await (const chunk of Bun.stdin.stream()) {
  pending += decoder.decode(chunk);
  let nl: number;
  while ((nl = pending.indexOf("\n")) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    const msg = JSON.parse(line) as { kind: string; ufrag?: string; pwd?: string; candidates?: string[]; text?: string };
    if (msg.kind === "remote") {
      const started = performance.now();
      conn.setRemoteParams({ iceLite: false, usernameFragment: msg.ufrag!, password: msg.pwd! });
      for (const c of msg.candidates!) await conn.addRemoteCandidate(Candidate.fromSdp(c.replace(/^candidate:/, "")));
      await conn.addRemoteCandidate(undefined);
      conn
        .connect()
        .then(() => {
          const p = conn.nominated!;
          out({ kind: "connected", ms: performance.now() - started, local: `${p.localCandidate.type} ${p.localCandidate.host}:${p.localCandidate.port}`, remote: `${p.remoteCandidate.type} ${p.remoteCandidate.host}:${p.remoteCandidate.port}` });
        })
        .catch((err: unknown) => out({ kind: "failed", err: String(err) }));
    } else if (msg.kind === "send") {
      await conn.send(Buffer.from(msg.text!));
    } else if (msg.kind === "close") {
      await conn.close();
      process.exit(0);
    }
  }
}
