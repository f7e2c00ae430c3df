//! Tracing across enqueue and run: W3C trace context in the envelope
//! (cargo feature `opentelemetry`).
//!
//! With the feature on, nothing needs to be called:
//! - **Enqueue.** Every [`Client`](crate::Client) puts the OpenTelemetry
//!   context of the current `tracing` span (read through
//!   [`opentelemetry::Context::current`], where the layer puts it, or the
//!   span itself) into the job's envelope as
//!   `meta.traceparent` (and `meta.tracestate` when it is not empty), in the
//!   [W3C Trace Context](https://www.w3.org/TR/trace-context/) format. An
//!   enqueue with no valid span context (no span, or a subscriber without
//!   the OpenTelemetry layer) adds nothing; a raw job carries nothing (its
//!   body is put as given). The client does this
//!   through an enqueue [hook](crate::hook) that it has from birth, before
//!   the hooks added with [`Client::add_hook`](crate::Client::add_hook).
//! - **Run.** The worker's span for each attempt (`job{tube=… id=…}`, one
//!   per beanstalkd job: every retry and every run of a chain is its own
//!   job) takes the carried context as its OpenTelemetry parent when the job
//!   is the first run of its chain (or a one-shot job, with all its
//!   retries): the handler's spans land in the trace of the request that
//!   enqueued the job. Later runs of a repeating or cron chain (`run` ≥ 1)
//!   start a **new trace each**, with a span *link* to the enqueuer's span
//!   instead: a chain that runs forever does not grow one endless trace.
//!
//! The worker's span reaches OpenTelemetry through a
//! [`tracing-opentelemetry`](https://docs.rs/tracing-opentelemetry) layer
//! in the application's subscriber. bsjobs is built against
//! `tracing-opentelemetry` 0.34 and `opentelemetry` 0.33: the layer must come
//! from those versions (with `opentelemetry_sdk` 0.33), or the worker's spans
//! keep their local parent and the propagation does nothing.
//!
//! ```no_run
//! use opentelemetry::trace::TracerProvider as _;
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! #[bsjobs::job(tube = "receipts")]
//! async fn send_receipt(order: u64) {
//!     // Runs inside `job{tube="receipts" id=…}`, a child of `checkout`.
//!     tracing::info!(order, "sending receipt");
//! }
//!
//! # async fn f() -> Result<(), bsjobs::Error> {
//! // Any exporter: OTLP, stdout, or the SDK's in-memory one in tests.
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
//! let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("shop"));
//! tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel))
//!     .expect("no other subscriber");
//!
//! let checkout = tracing::info_span!("checkout", order = 42);
//! let _entered = checkout.enter();
//! SendReceipt::enqueue(42).await?; // carries `meta.traceparent`
//! # Ok(()) }
//! ```
//!
//! A handler that wants the enqueuer's span context itself (to link a span
//! of its own) reads it with [`enqueued_from`].

use crate::hook::{CurrentJob, Hook, Outgoing};
use crate::job::{Handler, JobDescriptor};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use serde::Deserialize;
use std::borrow::Cow;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `meta` key of the W3C `traceparent`.
const TRACEPARENT: &str = "traceparent";
/// The `meta` key of the W3C `tracestate`.
const TRACESTATE: &str = "tracestate";

/// The enqueue hook every client has with the feature on.
#[derive(Debug)]
pub(crate) struct Inject;

impl Hook for Inject {
    fn on_enqueue(&self, job: &mut Outgoing<'_>) -> Result<(), String> {
        if let Some(sc) = current() {
            job.set_meta(TRACEPARENT, traceparent(&sc));
            let state = sc.trace_state().header();
            if !state.is_empty() {
                job.set_meta(TRACESTATE, state);
            }
        }
        Ok(())
    }
}

/// The span context enqueues made here should carry: OpenTelemetry's
/// current one (the layer attaches each `tracing` span's as it is entered:
/// one thread-local read), else the current `tracing` span's (a layer built
/// `with_context_activation(false)`).
fn current() -> Option<SpanContext> {
    let of = |cx: opentelemetry::Context| {
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    };
    of(opentelemetry::Context::current()).or_else(|| of(tracing::Span::current().context()))
}

/// `00-<trace id>-<span id>-<flags>`.
fn traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{:032x}-{:016x}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags()
    )
}

/// Reads a W3C `traceparent` (and `tracestate`) as a remote span context;
/// `None` for anything malformed or invalid.
fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let mut parts = traceparent.trim().splitn(5, '-');
    let version = parts.next()?;
    let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let rest = parts.next();
    // Version ff is forbidden; version 00 has exactly four fields; a later
    // version may append fields, which are ignored.
    if version.len() != 2 || !lower_hex(version) || version == "ff" {
        return None;
    }
    if version == "00" && rest.is_some() {
        return None;
    }
    if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    if !(lower_hex(trace) && lower_hex(span) && lower_hex(flags)) {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    // Only the sampled bit is defined; the others are not carried on.
    let flags = TraceFlags::new(flags) & TraceFlags::SAMPLED;
    let state = tracestate
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let sc = SpanContext::new(trace, span, flags, true, state);
    sc.is_valid().then_some(sc)
}

/// The span context of the enqueue that made `job`'s chain or job, from its
/// `meta.traceparent`; `None` when it carries none (or a malformed one).
///
/// ```no_run
/// #[bsjobs::job(tube = "report")]
/// async fn report() {
///     let job = bsjobs::current_job().expect("inside a handler");
///     if let Some(cx) = bsjobs::otel::enqueued_from(&job) {
///         tracing::info!(trace = %cx.trace_id(), "enqueued from this trace");
///     }
/// }
/// ```
pub fn enqueued_from(job: &CurrentJob) -> Option<SpanContext> {
    let meta = job.meta.as_ref()?;
    let get = |k: &str| meta.get(k).and_then(serde_json::Value::as_str);
    parse(get(TRACEPARENT)?, get(TRACESTATE))
}

/// The fields of an envelope this module reads: borrowed where the JSON
/// allows, everything else skipped.
#[derive(Deserialize)]
struct Carried<'a> {
    #[serde(default)]
    run: u32,
    #[serde(default, borrow)]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(default, borrow)]
    traceparent: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tracestate: Option<Cow<'a, str>>,
}

/// Makes `span`, the worker's span for one attempt of a job with body
/// `body`, continue the trace the envelope carries: as the parent on the
/// chain's first run, as a link in a new trace on later runs. Must be
/// called before the span is first entered (its OpenTelemetry span starts
/// then). Does nothing for raw jobs, bodies that carry no valid context,
/// or a subscriber without the OpenTelemetry layer.
pub(crate) fn continue_trace(span: &tracing::Span, d: &JobDescriptor, body: &[u8]) {
    if span.is_disabled() || !matches!(d.handler, Handler::Args(_)) {
        return;
    }
    // A body that is not an envelope is the worker's to report, not ours.
    let Ok(carried) = serde_json::from_slice::<Carried<'_>>(body) else {
        return;
    };
    let Some(meta) = carried.meta else { return };
    let Some(parent) = meta
        .traceparent
        .as_deref()
        .and_then(|tp| parse(tp, meta.tracestate.as_deref()))
    else {
        return;
    };
    if carried.run == 0 {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    } else {
        let _ = span.set_parent(opentelemetry::Context::new());
        span.add_link(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips() {
        let sc = parse(TP, Some("congo=t61rcWkgMzE")).unwrap();
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_state().get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(traceparent(&sc), TP);
        let unsampled = parse(&TP.replace("-01", "-00"), None).unwrap();
        assert!(!unsampled.is_sampled());
        assert_eq!(traceparent(&unsampled), TP.replace("-01", "-00"));
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            assert!(parse(bad, None).is_none(), "{bad:?}");
        }
        // A later version may append fields.
        assert!(parse(&format!("01-{}-extra", &TP[3..]), None).is_some());
    }

    #[test]
    fn enqueued_from_reads_the_meta() {
        let mut job = CurrentJob::new("t", 1);
        assert!(enqueued_from(&job).is_none());
        job.meta = Some(serde_json::json!({ "traceparent": TP, "other": [1] }));
        let sc = enqueued_from(&job).unwrap();
        assert_eq!(format!("{:032x}", sc.trace_id()), &TP[3..35]);
        job.meta = Some(serde_json::json!({ "traceparent": 5 }));
        assert!(enqueued_from(&job).is_none());
    }
}
