// `bun run bench`: every benchmark, each printing ratios against a reference measured in the same run.
import { runCryptoBench } from "./crypto.ts";
import { runHandshakeFloodBench } from "./handshake-flood.ts";
import { runIceRelayBench } from "./ice-relay.ts";
import { runPeersAtScaleBench } from "./peers-at-scale.ts";
import { runTunnelBench } from "./tunnel.ts";
import { runUdpBench } from "./udp.ts";

runCryptoBench();
await runUdpBench();
await runTunnelBench();
await runHandshakeFloodBench();
await runPeersAtScaleBench();
await runIceRelayBench();
