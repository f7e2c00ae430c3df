//! Feature `opentelemetry`: an enqueue made inside a span carries its W3C
//! trace context in the envelope, and the worker's span for each attempt
//! continues that trace (the first run of a chain) or starts a new one that
//! links to it (later runs). Spans go to the SDK's in-memory exporter
//! through a `tracing-opentelemetry` layer, as an application's would.

use bsjobs::testing::Beanstalkd;
use bsjobs_tests::{eventually, spawn_worker};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceId, TracerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

/// The process-wide subscriber of these tests: OpenTelemetry into memory,
/// plus the usual log lines (`RUST_LOG`, default `warn`). Every test calls
/// it before anything logs.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    &EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("bsjobs-tests"));
            let logs = tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
                );
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(otel).with(logs),
            )
            .expect("the first subscriber of this test binary");
            (exporter, provider)
        })
        .0
}

fn server() -> (Beanstalkd, bsjobs::Client) {
    exporter();
    let srv = Beanstalkd::start();
    let client = bsjobs::Client::new(&srv.url()).expect("client");
    (srv, client)
}

/// Finished spans named `name` whose `tube` attribute is `tube`.
fn spans(name: &str, tube: &str) -> Vec<SpanData> {
    exporter()
        .get_finished_spans()
        .expect("spans")
        .into_iter()
        .filter(|s| {
            s.name == name
                && s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "tube" && kv.value.as_str() == tube)
        })
        .collect()
}

/// Runs `fut` inside a fresh span named `checkout`, as a web request
/// handler would enqueue; returns its output and the span's context.
async fn in_checkout<F: Future>(fut: F) -> (F::Output, SpanContext) {
    let span = tracing::info_span!("checkout");
    let cx = span.context().span().span_context().clone();
    assert!(
        cx.is_valid(),
        "the layer gives spans an OpenTelemetry context"
    );
    (fut.instrument(span).await, cx)
}

async fn meta_of(client: &bsjobs::Client, h: &bsjobs::JobHandle) -> Option<serde_json::Value> {
    let body = client.peek(h.server, h.id).await.unwrap().expect("the job");
    let env: serde_json::Value = serde_json::from_slice(&body).unwrap();
    env.get("meta").cloned()
}

fn traceparent(cx: &SpanContext) -> String {
    format!("00-{}-{}-01", cx.trace_id(), cx.span_id())
}

// ---------------------------------------------------------------------

#[bsjobs::job(tube = "ot_receipt")]
async fn send_receipt(order: u64) {
    let render = tracing::info_span!("render_receipt", order, tube = "ot_receipt");
    render.in_scope(|| tracing::info!("rendering"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handlers_span_continues_the_enqueuers_trace() {
    let (srv, client) = server();
    let (h, checkout) = in_checkout(SendReceipt::new(42).client(&client).enqueue()).await;
    let h = h.unwrap();
    let meta = meta_of(&client, &h).await.expect("meta");
    assert_eq!(meta["traceparent"], traceparent(&checkout));
    assert!(meta.get("tracestate").is_none(), "empty tracestate omitted");

    let (sd, w) = spawn_worker(&srv.url(), &["ot_receipt"]);
    assert!(
        eventually(Duration::from_secs(10), || {
            !spans("job", "ot_receipt").is_empty()
                && !spans("render_receipt", "ot_receipt").is_empty()
        })
        .await,
        "the job ran and its spans were exported"
    );
    sd.trigger();
    w.await.unwrap().unwrap();

    let job = &spans("job", "ot_receipt")[0];
    assert_eq!(job.span_context.trace_id(), checkout.trace_id());
    assert_eq!(job.parent_span_id, checkout.span_id());
    assert!(
        job.parent_span_is_remote,
        "the parent came through beanstalkd"
    );
    assert!(job.links.is_empty());
    let render = &spans("render_receipt", "ot_receipt")[0];
    assert_eq!(render.span_context.trace_id(), checkout.trace_id());
    assert_eq!(
        render.parent_span_id,
        job.span_context.span_id(),
        "the handler's own spans hang below the job's"
    );
}

// ---------------------------------------------------------------------

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "ot_flaky", retries = 2, backoff = "1s")]
async fn charge_card() -> Result<(), String> {
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        Err("gateway down".into())
    } else {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_has_its_own_span_in_the_enqueuers_trace() {
    let (srv, client) = server();
    let (sd, w) = spawn_worker(&srv.url(), &["ot_flaky"]);
    let (h, checkout) = in_checkout(ChargeCard::new().client(&client).enqueue()).await;
    h.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || spans("job", "ot_flaky").len()
            == 2)
        .await,
        "a failed attempt and a successful retry"
    );
    sd.trigger();
    w.await.unwrap().unwrap();
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 2);

    let attempts = spans("job", "ot_flaky");
    assert_eq!(attempts.len(), 2, "one span per attempt");
    for a in &attempts {
        assert_eq!(a.span_context.trace_id(), checkout.trace_id());
        assert_eq!(a.parent_span_id, checkout.span_id());
    }
    assert_ne!(
        attempts[0].span_context.span_id(),
        attempts[1].span_context.span_id()
    );
}

// ---------------------------------------------------------------------

/// `(run, trace id, span id)` of the span each run of the chain ran in.
static CHAIN_RUNS: Mutex<Vec<(u32, TraceId, SpanId)>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "ot_chain", repeat = "1s", max = 3)]
async fn sync_inventory() {
    let run = bsjobs::current_job().expect("inside a handler").run;
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    CHAIN_RUNS
        .lock()
        .unwrap()
        .push((run, sc.trace_id(), sc.span_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_runs_of_a_chain_start_new_traces_linked_to_the_enqueuer() {
    let (srv, client) = server();
    let (sd, w) = spawn_worker(&srv.url(), &["ot_chain"]);
    let (h, checkout) = in_checkout(SyncInventory::new().client(&client).enqueue()).await;
    h.unwrap();
    assert!(
        eventually(Duration::from_secs(15), || spans("job", "ot_chain").len()
            == 3)
        .await,
        "three runs, three spans"
    );
    sd.trigger();
    w.await.unwrap().unwrap();

    let mut runs = CHAIN_RUNS.lock().unwrap().clone();
    runs.sort_by_key(|r| r.0);
    assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
    let exported = spans("job", "ot_chain");
    let span_of = |id: SpanId| {
        exported
            .iter()
            .find(|s| s.span_context.span_id() == id)
            .expect("the handler ran inside the exported job span")
    };

    let first = span_of(runs[0].2);
    assert_eq!(first.span_context.trace_id(), checkout.trace_id());
    assert_eq!(first.parent_span_id, checkout.span_id());
    assert!(first.links.is_empty());

    for &(run, trace, span) in &runs[1..] {
        let later = span_of(span);
        assert_ne!(trace, checkout.trace_id(), "run {run} starts a new trace");
        assert_eq!(later.parent_span_id, SpanId::INVALID, "run {run} is a root");
        let linked: Vec<_> = later
            .links
            .iter()
            .map(|l| (l.span_context.trace_id(), l.span_context.span_id()))
            .collect();
        assert_eq!(
            linked,
            [(checkout.trace_id(), checkout.span_id())],
            "run {run} links to the enqueuer"
        );
    }
    assert_ne!(runs[1].1, runs[2].1, "one trace per run, not per chain");
}

// ---------------------------------------------------------------------

#[bsjobs::job(tube = "ot_quiet")]
async fn quiet(n: u32) {
    let _ = n;
}

#[bsjobs::job(tube = "ot_raw", raw)]
async fn take_raw(body: Vec<u8>) {
    let _ = body;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_span_or_an_envelope_nothing_is_carried() {
    let (_srv, client) = server();
    // No span: no trace context, and (with no other hook) no `meta` at all.
    let bare = Quiet::new(1).client(&client).enqueue().await.unwrap();
    assert_eq!(meta_of(&client, &bare).await, None);
    // The control: the same job inside a span carries it.
    let (inside, checkout) = in_checkout(Quiet::new(2).client(&client).enqueue()).await;
    let meta = meta_of(&client, &inside.unwrap()).await.expect("meta");
    assert_eq!(meta["traceparent"], traceparent(&checkout));
    // A raw job is put exactly as given, span or not.
    let (raw, _) = in_checkout(TakeRaw::new(b"plain".to_vec()).client(&client).enqueue()).await;
    let raw = raw.unwrap();
    let body = client.peek(raw.server, raw.id).await.unwrap();
    assert_eq!(body.as_deref(), Some(&b"plain"[..]));
}
