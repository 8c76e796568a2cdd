// The gateway's one OpenTelemetry SDK (@opentelemetry/sdk-node's NodeSDK): one resource
// (service.name, service.version, service.instance.id = the gateway id) shared by
// - metrics: a Prometheus reader serialised on demand for the admin's /metrics (no server of its
//   own), plus an OTLP/HTTP push when an endpoint is set;
// - traces: OTLP/HTTP export when a traces endpoint is set. Without one there is no tracer at
//   all (`tracer` is undefined), so every span site is a skipped branch: tracing off costs nothing.
// Resource attributes from OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME override ours, as the OTel
// spec says; no other detector runs (the default set would replace service.instance.id with a
// random one). No OTLP log export, no instrumentations.
// OTEL_SDK_DISABLED=true turns the SDK off (no OTLP, no traces) but not the admin's /metrics: the
// Prometheus reader then gets a bare MeterProvider of its own.
import { context, logs, metrics, propagation, trace, type Meter, type Tracer } from "@opentelemetry/api";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from "@opentelemetry/sdk-metrics";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace";
import pkg from "../../package.json" with { type: "json" };

export const SERVICE_NAME = "glassgate";
export const SERVICE_VERSION: string = pkg.version;

export interface TelemetryOptions {
  /** The gateway id (store/gateway-id.ts): service.instance.id. */
  gid?: string;
  serviceVersion?: string;
  /** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT): metrics go to `${url}/v1/metrics`. */
  otlpEndpoint?: string;
  otlpIntervalMs?: number;
  /** Full OTLP/HTTP traces URL (…/v1/traces); none: no tracing. See `tracesUrlFromEnv`. */
  tracesUrl?: string;
  /** How long finished spans wait to be batched (BatchSpanProcessor; default 5 s). */
  traceBatchDelayMs?: number;
}

/** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is, per the OTel spec) or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces. */
export function tracesUrlFromEnv(env: Record<string, string | undefined>): string | undefined {
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) return `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/$/, "")}/v1/traces`;
  return undefined;
}

export class Telemetry {
  readonly #sdk: NodeSDK | undefined;
  /** Only when the SDK is disabled (OTEL_SDK_DISABLED): what keeps /metrics alive. */
  readonly #bare: MeterProvider | undefined;
  readonly #prometheus: PrometheusExporter;
  /** No scope label on every series: glassgate has one meter, the label would only be noise. */
  readonly #serializer = new PrometheusSerializer(undefined, false, undefined, false, true);
  readonly meter: Meter;
  /** Undefined when no traces endpoint is set: callers skip span work entirely. */
  readonly tracer: Tracer | undefined;
  #down: Promise<void> | undefined;

  constructor(opts: TelemetryOptions = {}) {
    this.#prometheus = new PrometheusExporter({ preventServerStart: true });
    const resource = defaultResource().merge(resourceFromAttributes({
      "service.name": SERVICE_NAME,
      "service.version": opts.serviceVersion ?? SERVICE_VERSION,
      ...(opts.gid ? { "service.instance.id": opts.gid } : {}),
    }));
    if (/^\s*true\s*$/i.test(process.env.OTEL_SDK_DISABLED ?? "")) {
      this.#bare = new MeterProvider({ resource, readers: [this.#prometheus] });
      this.meter = this.#bare.getMeter(SERVICE_NAME);
      this.tracer = undefined;
      return;
    }
    const readers: IMetricReader[] = [this.#prometheus];
    if (opts.otlpEndpoint) {
      const url = `${opts.otlpEndpoint.replace(/\/$/, "")}/v1/metrics`;
      readers.push(new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url }), exportIntervalMillis: opts.otlpIntervalMs ?? 60_000 }));
    }
    const spanProcessors = opts.tracesUrl
      ? [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: opts.tracesUrl }), scheduledDelayMillis: opts.traceBatchDelayMs })]
      : [];
    this.#sdk = new NodeSDK({
      resource,
      resourceDetectors: [envDetector],
      metricReaders: readers,
      spanProcessors,
      // An empty list, not "unset": unset makes the SDK export logs over OTLP to localhost.
      logRecordProcessors: [],
      textMapPropagator: null,
      instrumentations: [],
    });
    // The SDK registers its providers as the process-wide globals and offers no accessor to its
    // own; a registration fails silently when one is already there (a second instance in tests),
    // so clear them first and take ours back from the globals right after start.
    trace.disable();
    metrics.disable();
    logs.disable();
    context.disable();
    propagation.disable();
    this.#sdk.start();
    this.meter = metrics.getMeterProvider().getMeter(SERVICE_NAME);
    this.tracer = opts.tracesUrl ? trace.getTracerProvider().getTracer(SERVICE_NAME, opts.serviceVersion ?? SERVICE_VERSION) : undefined;
  }

  async prometheusText(): Promise<string> {
    const { resourceMetrics } = await this.#prometheus.collect();
    return this.#serializer.serialize(resourceMetrics);
  }

  /** Flushes pending spans and metrics (OTLP) and stops the readers. Idempotent. */
  shutdown(): Promise<void> {
    return (this.#down ??= this.#sdk ? this.#sdk.shutdown() : this.#bare!.shutdown());
  }
}
