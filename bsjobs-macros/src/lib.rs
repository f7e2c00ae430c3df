//! The `#[job]` attribute of [bsjobs](https://docs.rs/bsjobs). Use it through
//! the facade, as `#[bsjobs::job]`; this crate is an implementation detail.
#![warn(missing_docs, unreachable_pub)]

mod cron;
mod ctxt;
mod expand;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Turns a function into a background job run by a bsjobs worker.
///
/// ```ignore
/// #[derive(Debug, thiserror::Error)]
/// #[error("mail server said {0}")]
/// pub struct MailError(String);
///
/// /// Sends one email.
/// #[bsjobs::job(tube = "email", priority = 10, ttr = "2m", retries = 5)]
/// pub async fn send_email(to: String, subject: String) -> Result<(), MailError> {
///     // ...
///     Ok(())
/// }
///
/// // Producer: enqueue with the generated type (`send_email` → `SendEmail`).
/// SendEmail::enqueue("ada@example.com".into(), "Hi".into()).await?;
/// // ...or with per-call options:
/// SendEmail::new("ada@example.com".into(), "Hi".into())
///     .delay(std::time::Duration::from_secs(60))
///     .enqueue()
///     .await?;
///
/// // A job that runs every 30 seconds, 10 times.
/// #[bsjobs::job(repeat = "30s", max = 10)]
/// fn heartbeat() {
///     println!("still here");
/// }
///
/// // Worker: runs every job linked into the binary.
/// bsjobs::run().await?;
/// ```
///
/// # The function
///
/// - `async fn` runs on the worker's tokio runtime; a plain `fn` runs on
///   tokio's blocking pool, so it may block.
/// - Each parameter is `name: Type` with an owned type that is
///   `Serialize + DeserializeOwned` (`String`, not `&str`). The arguments travel
///   as a JSON object keyed by parameter name, so a producer in another
///   language can put `{"args":{"to":"…","subject":"…"}}` into the tube.
/// - One parameter may be a `bsjobs::JobContext`, in any position and under
///   any pattern: it is not an argument (`enqueue` does not take it); the
///   worker fills it for each run with the current job id, the tube, the
///   attempt and run numbers and the chain id.
/// - It returns nothing, `()`, or `Result<(), E>` with `E: Display`. An `Err`
///   (or a panic, or a `timeout`) fails the run, which is then retried.
/// - No `self`, generics, lifetimes, `const`, `unsafe` or `extern`.
/// - It stays an ordinary function you can call directly.
///
/// # Arguments
///
/// All are optional. Durations are a string of whole-second units — `"45"`
/// (seconds), `"30s"`, `"5m"`, `"2h"`, `"1d"`, `"1w"`, or combined like
/// `"1h30m"` — or an integer number of seconds. beanstalkd counts whole
/// seconds, so `"500ms"` or `"1.5s"` are rejected.
///
/// | argument | meaning | default |
/// |---|---|---|
/// | `tube = "name"` | the beanstalkd tube the jobs go to: 1–200 bytes of ASCII letters, digits and `-+/;.$_()`, not starting with `-` | the function's name |
/// | `priority = 10` | beanstalkd priority, a `u32`; smaller runs first | `1024` |
/// | `ttr = "60s"` | time to run: how long a worker may hold a job before beanstalkd hands it to another worker; at least 1s | `"60s"` |
/// | `delay = "10s"` | wait before the first run | `0` (run now) |
/// | `repeat = "30s"` | run again this long after each successful run; at least 1s | none: a one-shot job |
/// | `max = 5` | with `repeat`: stop after this many successful runs; at least 1 | none: repeat until cancelled |
/// | `retries = 3` | retries after the first failed attempt, then the job is buried | `3` |
/// | `backoff = "5s"` | wait before the first retry; doubles with each retry, with jitter, capped at 1 hour | `"5s"` |
/// | `timeout = "5m"` | longest a single run may take before it counts as failed; at least 1s | none |
/// | `cron = "0 9 * * MON-FRI"` | run on this schedule: 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds (`"*/5 * * * * *"`); names like `MON-FRI`, `JAN` and nicknames like `@daily` work. A cron job has no parameters (a `JobContext` is fine) and no `repeat`, `delay` or `max` | none |
/// | `tz = "Europe/Berlin"` | with `cron`: the IANA time zone the schedule is read in | `"UTC"` |
/// | `catch_up = "one"` | with `cron`: after a time with no worker running, `"one"` run for all missed ticks, or `"none"` | `"one"` |
/// | `unique_for = "1h"` | a unique job: while a job with the same key (default: its tube and arguments; per call `.unique_key(k)`) waits, is delayed or runs, or for this long after its enqueue, another enqueue returns that job's handle (`existing: true`) instead of a second job; `"0s"`: only while it lives. Not with `cron` or `raw` | none |
/// | `raw` | a flag: the job's body is the producer's bytes, not bsjobs' envelope (see below) | off |
/// | `crate = "::bsjobs"` | path of the bsjobs crate, for code that renames or re-exports it | `"::bsjobs"` |
///
/// # Raw jobs: serving a tube another system fills
///
/// With `raw`, the function takes the whole job body as its one parameter
/// (beside an optional `JobContext`): `body: Vec<u8>` gets the bytes as they
/// are, `text: String` UTF-8 text, and any other `T: Serialize +
/// DeserializeOwned` the body read as JSON. `enqueue(body)` puts exactly those
/// bytes (for `T`, its JSON), nothing added, so other consumers of the tube
/// see no change. A body that does not decode is buried. Retries keep the
/// job as it is: the worker holds a failed job reserved for its backoff and
/// then releases it, counting attempts from beanstalkd's `releases` and
/// `kicks` (the README's "Taking over an existing tube" says what that
/// costs). A raw job cannot `repeat` or have a `cron` schedule: its body has
/// no room for the counters that keep a chain of runs one chain.
///
/// ```ignore
/// #[bsjobs::job(tube = "legacy_mail", raw, retries = 5)]
/// async fn legacy_mail(body: Vec<u8>, ctx: bsjobs::JobContext) -> Result<(), MailError> {
///     // `ctx.attempt` counts from beanstalkd's own counters.
///     send(&body).await
/// }
/// ```
///
/// # What it generates
///
/// Next to the function, a unit struct named after it in UpperCamelCase
/// (`send_email` → `SendEmail`), with the function's visibility:
///
/// - `SendEmail::TUBE: &'static str` and `SendEmail::OPTIONS: JobOptions`;
/// - `SendEmail::new(to, subject) -> Enqueue`, a builder for per-call options
///   (`.delay(..)`, `.at(..)`, `.priority(..)`, `.ttr(..)`, `.key(..)`,
///   `.unique_key(..)`, `.unique_for(..)`, `.client(..)`);
/// - `SendEmail::enqueue(to, subject).await -> Result<JobHandle, Error>`.
///
/// It also registers the job, so that a worker in the same binary finds it.
///
/// Mistakes are reported at compile time, at the offending token: an unknown
/// or repeated argument, a literal of the wrong kind, a duration that is not
/// whole seconds, an invalid tube name, `max` without `repeat`, a cron
/// expression or time zone that does not parse, `cron` with `repeat`,
/// `delay`, `max` or parameters, `tz`/`catch_up` without `cron`, a raw job
/// without exactly one body parameter or with `repeat`/`cron`/`unique_for`,
/// `unique_for` with `cron`, a misplaced
/// `JobContext` (borrowed, twice, inside another type), a parameter
/// type that is borrowed or not serializable, and unsupported signatures.
#[proc_macro_attribute]
pub fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::job(args.into(), item.into()).into()
}
