//! `BENCH_OTEL=1`: the worker and producer children run under a subscriber
//! with a `tracing-opentelemetry` layer (spans recorded by the SDK, sent
//! through its batch processor to an exporter that drops them), the
//! producer enqueues inside a span, and the drained jobs carry a
//! `meta.traceparent`, so that `--features opentelemetry` measures the
//! propagation (injection, extraction, parenting) against the same layer
//! without it (`--features otel-layer`). `scripts/bench-otel.sh` runs the
//! four combinations. Without the env variable nothing is installed.

/// The `meta` the drained jobs carry under `BENCH_OTEL=1`.
pub(crate) const META: &str =
    r#","meta":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#;

/// Whether this run measures with OpenTelemetry (`BENCH_OTEL=1`).
pub(crate) fn on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("BENCH_OTEL").is_ok_and(|v| v == "1"))
}

/// Installs the subscriber in a child process when [`on`].
#[cfg(feature = "otel-layer")]
pub(crate) fn install() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    if !on() {
        return;
    }
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("the bench child's only subscriber");
    // The provider lives as long as the process.
    std::mem::forget(provider);
}

/// Without the layer's crates, `BENCH_OTEL=1` is a mistake.
#[cfg(not(feature = "otel-layer"))]
pub(crate) fn install() {
    assert!(
        !on(),
        "BENCH_OTEL=1 needs the bench built with --features otel-layer (or opentelemetry)"
    );
}

/// An exporter that drops every span: the SDK's work is measured, no I/O.
#[cfg(feature = "otel-layer")]
#[derive(Debug)]
struct Discard;

#[cfg(feature = "otel-layer")]
impl opentelemetry_sdk::trace::SpanExporter for Discard {
    fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        drop(batch);
        std::future::ready(Ok(()))
    }
}
