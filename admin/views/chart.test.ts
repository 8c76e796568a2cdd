import { describe, expect, test } from "bun:test";
import { fillQuietIntervals, timeChart, timeLabel, timeTicks, valueLabel, valueTicks, type ChartOptions } from "./chart.ts";

const render = async (o: Partial<ChartOptions> & Pick<ChartOptions, "series">) =>
  String(await timeChart({ title: "Throughput", unit: "bit/s", empty: "nothing yet", ...o }));
const T0 = Date.parse("2026-11-29T10:00:00Z");
const pts = (values: number[], stepMs = 5000) => values.map((value, i) => ({ ts: T0 + i * stepMs, value }));

describe("axis ticks", () => {
  test("value ticks start at zero and reach the maximum in round steps", () => {
    expect(valueTicks(7)).toEqual([0, 2, 4, 6, 8]);
    expect(valueTicks(1_234_567)).toEqual([0, 500_000, 1_000_000, 1_500_000]);
    expect(valueTicks(0.3)).toEqual([0, 0.1, 0.2, 0.3]);
    expect(valueTicks(0)).toEqual([0, 1]);
  });

  test("count ticks are whole numbers even for small maxima", () => {
    expect(valueTicks(2, 4, true)).toEqual([0, 1, 2]);
  });

  test("time ticks fall on round UTC times inside the range, at most six", () => {
    const { step, ticks } = timeTicks(T0 + 3000, T0 + 10 * 60_000);
    expect(step).toBe(120_000);
    expect(ticks.map((t) => new Date(t).toISOString().slice(11, 16))).toEqual(["10:02", "10:04", "10:06", "10:08", "10:10"]);
    expect(timeTicks(T0, T0 + 24 * 3600_000).ticks.length).toBeLessThanOrEqual(6);
  });

  test("labels carry their unit; seconds show only for short steps", () => {
    expect(valueLabel(1_500_000, "bit/s")).toBe("1.5 Mbit/s");
    expect(valueLabel(250_000, "bit/s")).toBe("250 kbit/s");
    expect(valueLabel(0, "bit/s")).toBe("0 bit/s");
    expect(valueLabel(3, "count")).toBe("3");
    expect(timeLabel(T0 + 5000, 5000)).toBe("10:00:05");
    expect(timeLabel(T0 + 5000, 60_000)).toBe("10:00");
  });
});

describe("time chart", () => {
  test("with no samples it says so instead of drawing an empty frame", async () => {
    const out = await render({ series: [{ label: "received", cls: "s-rx", points: [] }] });
    expect(out).not.toContain("<svg");
    expect(out).toContain("nothing yet");
  });

  test("with one sample there is no line to draw: the empty text, not a blank chart", async () => {
    const out = await render({ series: [{ label: "received", cls: "s-rx", points: pts([800]) }], empty: "one sample so far" });
    expect(out).not.toContain("<svg");
    expect(out).toContain("one sample so far");
  });

  test("with samples it draws both axes, unit and UTC time labels, and one line point per sample", async () => {
    const out = await render({
      series: [
        { label: "received", cls: "s-rx", points: pts([0, 1_000_000, 2_000_000, 500_000]) },
        { label: "sent", cls: "s-tx", points: pts([0, 10, 20, 30]) },
      ],
    });
    expect(out).toContain('aria-label="Throughput"');
    expect(out.match(/<g class="axis"><line[^>]*\/><line[^>]*\/><\/g>/)).not.toBeNull();
    const yLabels = [...out.matchAll(/<text x="\d+(?:\.\d)?" y="[\d.]+" text-anchor="end">([^<]+)<\/text>/g)].map((m) => m[1]);
    expect(yLabels).toEqual(["0 bit/s", "500 kbit/s", "1 Mbit/s", "1.5 Mbit/s", "2 Mbit/s"]);
    const xLabels = [...out.matchAll(/text-anchor="middle">([^<]+)<\/text>/g)].map((m) => m[1]);
    expect(xLabels).toEqual(["10:00:00", "10:00:05", "10:00:10", "10:00:15"]);
    expect(out).toContain("time (UTC)");
    const lines = [...out.matchAll(/<polyline class="line (s-\w+)" points="([^"]+)"/g)];
    expect(lines.map((l) => l[1])).toEqual(["s-rx", "s-tx"]);
    expect(lines[0]![2]!.split(" ")).toHaveLength(4);
    expect(out).toContain("10:00:00–10:00:15 UTC");
  });

  test("the highest value sits on the top tick, zero on the x axis", async () => {
    const out = await render({ unit: "count", series: [{ label: "completed", cls: "s-ok", points: pts([0, 4]) }], height: 180 });
    const [, first, last] = /points="[\d.]+,([\d.]+) [\d.]+,([\d.]+)"/.exec(out)!;
    const axisY = Number(/<g class="axis"><line x1="72" x2="72" y1="(\d+)" y2="(\d+)"/.exec(out)![2]);
    const grid = /<g class="grid">(.*?)<\/g>/.exec(out)![1]!;
    const topTickY = Number([...grid.matchAll(/y1="([\d.]+)"/g)].at(-1)![1]);
    expect(Number(first)).toBe(axisY);
    expect(Number(last)).toBe(topTickY);
    expect(topTickY).toBeLessThan(axisY);
  });
});

describe("stored samples", () => {
  test("quiet intervals between and after stored samples read as zero, not as a bridge", () => {
    const filled = fillQuietIntervals([{ ts: 60_000, value: 5 }, { ts: 600_000, value: 7 }], 60_000, 900_000);
    expect(filled).toEqual([
      { ts: 60_000, value: 5 }, { ts: 120_000, value: 0 }, { ts: 540_000, value: 0 }, { ts: 600_000, value: 7 },
      { ts: 660_000, value: 0 }, { ts: 900_000, value: 0 },
    ]);
  });

  test("back-to-back samples are kept as they are", () => {
    const p = [{ ts: 60_000, value: 5 }, { ts: 120_000, value: 6 }];
    expect(fillQuietIntervals(p, 60_000, 150_000)).toEqual(p);
  });
});
