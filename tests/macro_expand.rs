//! What `#[bsjobs::job]` generates, checked without a beanstalkd: the job
//! type's constants, the registered descriptor, the handler that decodes
//! arguments and runs the function, and the envelope `new` produces.

use bsjobs::JobContext;
use bsjobs_core::job::{BodyError, Handler, HandlerFuture, JobDescriptor, JobOptions};
use serde_json::{json, Value};
use std::fmt;
use std::sync::Mutex;

/// Calls that reached the job functions, as `(function, argument)`.
static CALLS: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

fn record(job: &'static str, arg: impl Into<String>) {
    CALLS.lock().unwrap().push((job, arg.into()));
}

fn called(job: &'static str, arg: &str) -> bool {
    CALLS
        .lock()
        .unwrap()
        .iter()
        .any(|(j, a)| *j == job && a == arg)
}

#[derive(Debug)]
pub struct MailError(String);

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mail server said {}", self.0)
    }
}

const EMAIL_LINE: u32 = line!() + 12;

/// Sends mail.
#[bsjobs::job(
    tube = "email",
    priority = 10,
    ttr = "2m",
    delay = 5,
    retries = 1,
    backoff = "1m",
    timeout = "1h30m"
)]
pub async fn email(to: String, n: u32) -> Result<(), MailError> {
    if to == "refuse" {
        return Err(MailError("no".into()));
    }
    record("email", format!("{to}/{n}"));
    Ok(())
}

const HEARTBEAT_LINE: u32 = line!() + 2;
#[bsjobs::job(repeat = "30s", max = 5)]
fn heartbeat() {
    record("heartbeat", "");
}

#[bsjobs::job(tube = "panics")]
fn panicking(message: String) {
    panic!("{message}");
}

mod images {
    use std::path::PathBuf;

    #[bsjobs::job]
    pub fn resize_image(path: PathBuf, sizes: Vec<u32>) -> std::io::Result<()> {
        if sizes.is_empty() {
            return Err(std::io::Error::other("no sizes"));
        }
        super::record("resize_image", format!("{}:{sizes:?}", path.display()));
        Ok(())
    }
}

fn descriptor(name: &str) -> &'static JobDescriptor {
    let mut found = JobDescriptor::all().filter(|d| d.name == name);
    let d = found
        .next()
        .unwrap_or_else(|| panic!("job {name} is not registered"));
    assert!(found.next().is_none(), "job {name} is registered twice");
    d
}

/// Starts job `name` with `args` as the worker would, with a first-attempt
/// context.
fn call(name: &str, args: &str) -> Result<HandlerFuture, serde_json::Error> {
    let d = descriptor(name);
    call_with(name, args, JobContext::new(d.tube, 1))
}

/// Starts job `name` with `args` and the context `ctx`.
fn call_with(name: &str, args: &str, ctx: JobContext) -> Result<HandlerFuture, serde_json::Error> {
    match descriptor(name).handler {
        Handler::Args(h) => h(args, ctx),
        Handler::Raw { .. } => panic!("{name} is a raw job"),
    }
}

/// Starts raw job `name` with `body`; also returns whether it takes a context.
fn call_raw(name: &str, body: &[u8], ctx: JobContext) -> (Result<HandlerFuture, BodyError>, bool) {
    match descriptor(name).handler {
        Handler::Raw { run, context } => (run(body, ctx), context),
        Handler::Args(_) => panic!("{name} is not a raw job"),
    }
}

#[test]
fn constants_hold_the_attribute_values() {
    assert_eq!(Email::TUBE, "email");
    assert_eq!(
        Email::OPTIONS,
        JobOptions {
            priority: 10,
            ttr: 120,
            delay: 5,
            retries: 1,
            backoff: 60,
            timeout: Some(5400),
            ..JobOptions::DEFAULT
        }
    );
    assert_eq!(Heartbeat::TUBE, "heartbeat");
    assert_eq!(
        Heartbeat::OPTIONS,
        JobOptions {
            repeat: Some(30),
            max: Some(5),
            ..JobOptions::DEFAULT
        }
    );
    assert_eq!(images::ResizeImage::TUBE, "resize_image");
    assert_eq!(images::ResizeImage::OPTIONS, JobOptions::DEFAULT);
    assert_eq!(Panicking::TUBE, "panics");
}

#[test]
fn every_job_is_registered_with_its_location() {
    let d = descriptor("email");
    assert_eq!((d.tube, d.options), (Email::TUBE, Email::OPTIONS));
    assert_eq!((d.file, d.line), (file!(), EMAIL_LINE));
    assert_eq!(d.location(), format!("{}:{}", file!(), EMAIL_LINE));

    let d = descriptor("heartbeat");
    assert_eq!((d.tube, d.options), (Heartbeat::TUBE, Heartbeat::OPTIONS));
    assert_eq!((d.file, d.line), (file!(), HEARTBEAT_LINE));

    let d = descriptor("resize_image");
    assert_eq!((d.tube, d.options), ("resize_image", JobOptions::DEFAULT));
    assert_eq!(descriptor("panicking").tube, "panics");
}

#[tokio::test]
async fn handler_runs_an_async_job() {
    let run = call("email", r#"{"to":"x@y.z","n":3}"#).unwrap();
    assert_eq!(run.await, Ok(()));
    assert!(called("email", "x@y.z/3"));
}

#[tokio::test]
async fn handler_ignores_unknown_keys() {
    let run = call("email", r#"{"n":4,"to":"extra","cc":["a"]}"#).unwrap();
    assert_eq!(run.await, Ok(()));
    assert!(called("email", "extra/4"));
}

#[tokio::test]
async fn handler_reports_the_error_display() {
    let run = call("email", r#"{"to":"refuse","n":1}"#).unwrap();
    assert_eq!(run.await, Err("mail server said no".into()));
}

#[test]
fn handler_rejects_bad_arguments() {
    let handler = |args: &str| call("email", args);
    for args in [
        r#"{"to":"x"}"#,
        r#"{"to":5,"n":3}"#,
        r#"{"to":"x","n":-1}"#,
        r#"["x",3]x"#,
        "null",
        "",
    ] {
        assert!(handler(args).is_err(), "{args}");
    }
}

#[tokio::test]
async fn handler_runs_a_plain_zero_argument_job() {
    let handler = |args: &str| call("heartbeat", args);
    assert_eq!(handler("{}").unwrap().await, Ok(()));
    assert_eq!(handler(r#"{"surplus":1}"#).unwrap().await, Ok(()));
    assert!(called("heartbeat", ""));
    assert!(handler("[1]x").is_err());
}

#[tokio::test]
async fn handler_runs_a_job_in_a_module() {
    let handler = |args: &str| call("resize_image", args);
    let run = handler(r#"{"path":"/tmp/a.png","sizes":[64,128]}"#).unwrap();
    assert_eq!(run.await, Ok(()));
    assert!(called("resize_image", "/tmp/a.png:[64, 128]"));
    let run = handler(r#"{"path":"/tmp/a.png","sizes":[]}"#).unwrap();
    assert_eq!(run.await, Err("no sizes".into()));
}

#[tokio::test]
async fn a_panicking_plain_job_fails_its_run() {
    let run = call("panicking", r#"{"message":"boom"}"#).unwrap();
    let err = run.await.unwrap_err();
    assert!(err.message.contains("boom"), "{err:?}");
}

#[tokio::test]
async fn the_functions_stay_callable() {
    email("direct".to_owned(), 7).await.unwrap();
    assert!(called("email", "direct/7"));
    heartbeat();
    images::resize_image("/b".into(), vec![1]).unwrap();
    assert!(called("resize_image", "/b:[1]"));
}

/// The envelope of `put`, without its generated identity (`id`: the
/// job's own, 32 hex digits, equal to `put.identity`).
fn body(put: &bsjobs_core::job::PreparedPut) -> Value {
    let mut v: Value = serde_json::from_slice(&put.body).unwrap();
    if let Some(id) = v.as_object_mut().and_then(|o| o.remove("id")) {
        assert_eq!(id.as_str(), Some(put.identity.as_str()));
        assert_eq!(put.identity.len(), 32);
    }
    v
}

#[test]
fn new_builds_the_envelope() {
    let e = Email::new("a@b.c".to_owned(), 3);
    assert_eq!(e.tube(), "email");
    let put = e.into_put().unwrap();
    assert_eq!(
        (put.tube, put.pri, put.delay, put.ttr),
        ("email", 10, 5, 120)
    );
    assert_eq!(put.chain, None);
    assert_eq!(body(&put), json!({"v": 1, "args": {"to": "a@b.c", "n": 3}}));

    let put = images::ResizeImage::new("/x".into(), vec![1, 2])
        .into_put()
        .unwrap();
    assert_eq!((put.pri, put.delay, put.ttr), (1024, 0, 60));
    assert_eq!(
        body(&put),
        json!({"v": 1, "args": {"path": "/x", "sizes": [1, 2]}})
    );
}

#[test]
fn new_of_a_repeating_job_starts_a_chain() {
    let put = Heartbeat::new().into_put().unwrap();
    let chain = put.chain.clone().expect("a repeating job has a chain id");
    assert_eq!(body(&put), json!({"v": 1, "args": {}, "chain": chain}));
}

#[test]
fn the_envelope_round_trips_through_the_handler() {
    let put = Email::new("round@trip".to_owned(), 9).into_put().unwrap();
    let args = body(&put)["args"].to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(call("email", &args).unwrap()).unwrap();
    assert!(called("email", "round@trip/9"));
}

#[bsjobs::job(tube = "ctx_first")]
async fn ctx_first(ctx: bsjobs::JobContext, who: String) {
    record(
        "ctx_first",
        format!("{who} {} {} {} {}", ctx.tube, ctx.id, ctx.attempt, ctx.run),
    );
}

#[bsjobs::job]
fn ctx_middle(a: u32, mut context: JobContext, b: u32) -> Result<(), String> {
    context.attempt += a + b;
    record(
        "ctx_middle",
        format!("{} {:?}", context.attempt, context.chain),
    );
    Ok(())
}

#[bsjobs::job]
async fn ctx_only(_: JobContext) {
    record("ctx_only", "");
}

#[tokio::test]
async fn the_context_reaches_the_function_in_its_position() {
    let d = descriptor("ctx_first");
    let mut ctx = JobContext::new(d.tube, 77);
    ctx.attempt = 3;
    ctx.run = 2;
    call_with("ctx_first", r#"{"who":"ada"}"#, ctx)
        .unwrap()
        .await
        .unwrap();
    assert!(called("ctx_first", "ada ctx_first 77 3 2"));

    let d = descriptor("ctx_middle");
    let mut ctx = JobContext::new(d.tube, 5);
    ctx.chain = Some("c1".into());
    call_with("ctx_middle", r#"{"a":10,"b":20}"#, ctx)
        .unwrap()
        .await
        .unwrap();
    assert!(called("ctx_middle", r#"31 Some("c1")"#));

    let d = descriptor("ctx_only");
    call_with("ctx_only", "{}", JobContext::new(d.tube, 1))
        .unwrap()
        .await
        .unwrap();
    assert!(called("ctx_only", ""));
}

#[test]
fn the_context_is_not_an_argument() {
    let put = CtxMiddle::new(1, 2).into_put().unwrap();
    assert_eq!(body(&put), json!({"v": 1, "args": {"a": 1, "b": 2}}));
    let put = CtxFirst::new("bob".into()).into_put().unwrap();
    assert_eq!(body(&put), json!({"v": 1, "args": {"who": "bob"}}));
    let put = CtxOnly::new().into_put().unwrap();
    assert_eq!(body(&put), json!({"v": 1, "args": {}}));
}

#[tokio::test]
async fn a_job_with_a_context_stays_callable() {
    ctx_first(JobContext::new("ctx_first", 9), "direct".into()).await;
    assert!(called("ctx_first", "direct ctx_first 9 1 1"));
}

#[bsjobs::job(tube = "raw_bytes", raw)]
async fn raw_bytes(body: Vec<u8>) {
    record("raw_bytes", format!("{body:?}"));
}

#[bsjobs::job(tube = "raw_text", raw, priority = 3)]
fn raw_text(ctx: JobContext, text: String) -> Result<(), String> {
    record("raw_text", format!("{text} {}", ctx.attempt));
    Ok(())
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Mail {
    to: String,
    n: u32,
}

#[bsjobs::job(tube = "raw_json", raw)]
async fn raw_json(mail: Mail) {
    record("raw_json", format!("{}/{}", mail.to, mail.n));
}

#[test]
fn a_raw_job_puts_its_body_and_nothing_else() {
    let put = RawBytes::new(b"\x00\xffbinary".to_vec())
        .into_put()
        .unwrap();
    assert_eq!(put.body, b"\x00\xffbinary");
    assert_eq!((put.tube, put.pri, put.chain), ("raw_bytes", 1024, None));
    let put = RawText::new("plain text".into()).into_put().unwrap();
    assert_eq!((put.body.as_slice(), put.pri), (&b"plain text"[..], 3));
    let put = RawJson::new(Mail {
        to: "a@b".into(),
        n: 2,
    })
    .into_put()
    .unwrap();
    assert_eq!(put.body, br#"{"to":"a@b","n":2}"#);
}

#[tokio::test]
async fn a_raw_handler_gets_the_body_in_its_shape() {
    let ctx = || JobContext::new("raw", 1);
    let (run, context) = call_raw("raw_bytes", b"\x01\x02", ctx());
    assert!(!context);
    run.unwrap().await.unwrap();
    assert!(called("raw_bytes", "[1, 2]"));

    let mut c = ctx();
    c.attempt = 4;
    let (run, context) = call_raw("raw_text", "grüße".as_bytes(), c);
    assert!(context, "raw_text takes a JobContext");
    run.unwrap().await.unwrap();
    assert!(called("raw_text", "grüße 4"));
    assert!(matches!(
        call_raw("raw_text", b"\xff", ctx()).0,
        Err(BodyError::Utf8(_))
    ));

    let (run, _) = call_raw("raw_json", br#"{"n":5,"to":"x@y","extra":1}"#, ctx());
    run.unwrap().await.unwrap();
    assert!(called("raw_json", "x@y/5"));
    for bad in [
        &b"{\"to\":1}"[..],
        b"not json",
        b"{\"args\":{\"to\":\"x\",\"n\":1}}",
    ] {
        assert!(
            matches!(call_raw("raw_json", bad, ctx()).0, Err(BodyError::Json(_))),
            "{bad:?}"
        );
    }
}

// Jobs whose names (and, in one, parameters) come from `macro_rules!`
// fragments: the generated code must resolve its own locals in the
// attribute's context, whatever the syntax context of the function's name.
macro_rules! plain_job_named {
    ($name:ident) => {
        #[bsjobs::job]
        fn $name(n: u32, ctx: JobContext) {
            record(stringify!($name), format!("{n} {}", ctx.id));
        }
    };
}

macro_rules! async_job_named {
    ($name:ident, $tube:literal, $arg:ident: $ty:ty) => {
        #[bsjobs::job(tube = $tube, retries = 1)]
        async fn $name($arg: $ty) -> Result<(), String> {
            record(stringify!($name), $arg.to_string());
            Ok(())
        }
    };
}

macro_rules! raw_job_named {
    ($name:ident) => {
        #[bsjobs::job(raw)]
        async fn $name(text: String, ctx: JobContext) {
            record(stringify!($name), format!("{text} {}", ctx.attempt));
        }
    };
}

plain_job_named!(macro_plain);
async_job_named!(macro_async, "macro_async_tube", who: String);
raw_job_named!(macro_raw);

#[tokio::test]
async fn jobs_defined_by_macro_rules_compile_and_run() {
    call("macro_plain", r#"{"n":4}"#).unwrap().await.unwrap();
    assert!(called("macro_plain", "4 1"));
    assert_eq!(MacroAsync::TUBE, "macro_async_tube");
    assert_eq!(MacroAsync::OPTIONS.retries, 1);
    call("macro_async", r#"{"who":"ada"}"#)
        .unwrap()
        .await
        .unwrap();
    assert!(called("macro_async", "ada"));
    let put = MacroAsync::new("bob".into()).into_put().unwrap();
    assert_eq!(body(&put), json!({"v": 1, "args": {"who": "bob"}}));
    let (run, context) = call_raw("macro_raw", b"hi", JobContext::new("macro_raw", 3));
    assert!(context);
    run.unwrap().await.unwrap();
    assert!(called("macro_raw", "hi 1"));
    let mut ctx = JobContext::new("macro_attr", 1);
    ctx.run = 6;
    call_with("macro_attr", r#"{"n":2}"#, ctx)
        .unwrap()
        .await
        .unwrap();
    assert!(called("macro_attr", "2 6"));
}

// The attribute written by the macro's caller, the function by the macro:
// the attribute's call site and the function's tokens are in different
// syntax contexts.
macro_rules! job_with_callers_attribute {
    (#[$attr:meta] $name:ident) => {
        #[$attr]
        async fn $name(n: u32, ctx: JobContext) -> Result<(), String> {
            record(stringify!($name), format!("{n} {}", ctx.run));
            Ok(())
        }
    };
}

job_with_callers_attribute!(
    #[bsjobs::job(tube = "macro_attr")]
    macro_attr
);

// The context's type named by the caller.
macro_rules! job_with_callers_context_type {
    ($name:ident, $context:ident) => {
        #[bsjobs::job]
        fn $name(ctx: $context) {
            record(stringify!($name), ctx.tube);
        }
    };
}

job_with_callers_context_type!(macro_ctx_type, JobContext);
