import { afterEach, describe, expect, test } from "bun:test";
import { spawn, type Subprocess } from "bun";
import { cpuSeconds, measuredPid, parseCpuTicks, parsePing, quantile, spread, threadCpuSeconds } from "./support.ts";

describe("reading /proc/<pid>/stat", () => {
  test("utime+stime are found after the command name, even one with spaces and parentheses", () => {
    // Fields 14 (utime) = 120 and 15 (stime) = 34; the comm field tries to shift them.
    const line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 900 0 0 0 120 34 0 0 20 0 9 0 1000 300000000 20000 18446744073709551615";
    expect(parseCpuTicks(line)).toBe(154);
  });

  test("a garbled line is an error, not a zero", () => {
    expect(() => parseCpuTicks("4242 (x) S 1")).toThrow(/unreadable/);
  });

  test("our own process has used some CPU time, and it never goes back", () => {
    const a = cpuSeconds(process.pid);
    let x = 0;
    for (let i = 0; i < 2e6; i++) x += i;
    expect(x).toBeGreaterThan(0);
    expect(cpuSeconds(process.pid)).toBeGreaterThanOrEqual(a);
    expect(a).toBeGreaterThan(0);
  });

  test("per-thread CPU time names our main thread (tid = pid) and never exceeds the process total", () => {
    let x = 0;
    for (let i = 0; i < 2e6; i++) x += i;
    expect(x).toBeGreaterThan(0);
    const threads = threadCpuSeconds(process.pid);
    const sum = [...threads.values()].reduce((a, b) => a + b, 0);
    expect(threads.get(process.pid)).toBeGreaterThan(0);
    // Exited threads count in the process total only; the clock tick is the rounding.
    expect(sum).toBeLessThanOrEqual(cpuSeconds(process.pid) + threads.size / 100);
  });
});

describe("the PID to measure", () => {
  const started: Subprocess[] = [];
  afterEach(() => {
    for (const p of started.splice(0)) p.kill("SIGKILL");
  });

  test("a launcher that execs (like `ip netns exec`) is measured as itself, once it has exec'd", async () => {
    const p = spawn(["sh", "-c", "exec sleep 30"], { stdout: "ignore", stderr: "ignore" });
    started.push(p);
    expect(await measuredPid(p.pid, "sleep")).toBe(p.pid);
  });

  test("a launcher that forks the program is followed to the child, whose time is the program's", async () => {
    const p = spawn(["bun", "-e", "const c = Bun.spawn(['bun', '-e', 'await Bun.sleep(30000)']); console.log(c.pid); await Bun.sleep(30000)"], { stdout: "pipe", stderr: "ignore" });
    started.push(p);
    const reader = p.stdout.getReader();
    const child = Number(new TextDecoder().decode((await reader.read()).value).trim());
    expect(await measuredPid(p.pid, "bun")).toBe(child);
    process.kill(child, "SIGKILL");
  });
});

describe("ping output and statistics", () => {
  test("RTTs come from the reply lines and loss from the summary", () => {
    const out = [
      "PING 10.204.0.2 (10.204.0.2) 56(84) bytes of data.",
      "64 bytes from 10.204.0.2: icmp_seq=1 ttl=64 time=0.512 ms",
      "64 bytes from 10.204.0.2: icmp_seq=3 ttl=64 time=12.0 ms",
      "",
      "--- 10.204.0.2 ping statistics ---",
      "3 packets transmitted, 2 received, 33.3333% packet loss, time 20ms",
      "rtt min/avg/max/mdev = 0.512/6.256/12.000/5.744 ms",
    ].join("\n");
    expect(parsePing(out)).toEqual({ sent: 3, rtts: [0.512, 12] });
  });

  test("quantiles by nearest rank: p50 and p99 of 1..100 are 50 and 99; NaN samples (failed runs) are ignored", () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(quantile(xs, 0.5)).toBe(50);
    expect(quantile(xs, 0.99)).toBe(99);
    expect(quantile([3, NaN, 1, 2], 0.5)).toBe(2);
    expect(quantile([], 0.5)).toBeNaN();
    expect(spread([0.3, NaN, 0.1, 0.2])).toEqual({ min: 0.1, max: 0.3 });
  });
});
