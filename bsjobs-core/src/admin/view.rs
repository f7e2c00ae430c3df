//! What an operator sees of a job: its beanstalkd stats and its body,
//! decoded through the envelope when it is one.

use super::JobRef;
use crate::job::Envelope;
use crate::proto::stats::{JobState, JobStats};
use crate::proto::JobId;
use serde::Serialize;

/// The most of a body that is shown raw (bodies that are not envelopes).
pub const RAW_SHOWN: usize = 16 * 1024;

/// One job: where it is, its beanstalkd counters and its decoded body.
#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    /// Server (index in the URL) and id.
    #[serde(flatten)]
    pub at: JobRef,
    /// `host:port` of the server.
    pub addr: String,
    /// The tube it is in.
    pub tube: String,
    /// `ready`, `delayed`, `reserved` or `buried`.
    #[serde(serialize_with = "state_str")]
    pub state: JobState,
    /// Priority (smaller runs first).
    pub pri: u32,
    /// Seconds since the job was put.
    pub age: u64,
    /// Seconds until a delayed job is ready or a reserved one times out.
    pub time_left: i64,
    /// Time to run, seconds.
    pub ttr: u32,
    /// How often beanstalkd handed it out.
    pub reserves: u64,
    /// How often it was buried.
    pub buries: u64,
    /// How often it was kicked.
    pub kicks: u64,
    /// The body, decoded.
    pub body: Body,
}

/// A job body as an operator reads it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// A bsjobs envelope.
    Envelope(EnvelopeView),
    /// A chain token of tube `bsjobs.chains`.
    ChainToken {
        /// The chain it guards.
        chain: String,
    },
    /// Anything else: shown as text (lossy UTF-8, cut at [`RAW_SHOWN`] bytes).
    Raw {
        /// The text.
        text: String,
        /// The body's length in bytes.
        len: usize,
        /// Why it is not an envelope.
        reason: String,
    },
}

/// The fields of a job envelope (see [`Envelope`]), owned.
#[derive(Debug, Clone, Serialize)]
pub struct EnvelopeView {
    /// The arguments, keyed by parameter name.
    pub args: serde_json::Value,
    /// Successful runs of the chain before this one.
    pub run: u32,
    /// Failed attempts of this run before this job.
    pub attempt: u32,
    /// Repeating chain id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Id of the job this one replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<JobId>,
    /// Chain generation.
    pub gen: u32,
    /// The job's stable identity (`id`, or the chain id), the same across
    /// retries, burial, kicks and runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Id of the chain's token in `bsjobs.chains`, when the worker recorded
    /// it (`tok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tok: Option<JobId>,
    /// Why the last attempt failed, when the worker recorded it (`err`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the job was first enqueued, Unix milliseconds (`enq`; a
    /// chain's: when the chain was enqueued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enqueued_at_ms: Option<i64>,
}

fn state_str<S: serde::Serializer>(s: &JobState, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

/// Fields the [`Envelope`] type does not read but an operator wants to see.
#[derive(serde::Deserialize)]
struct Extra {
    #[serde(default)]
    err: Option<serde_json::Value>,
    #[serde(default)]
    tok: Option<JobId>,
}

#[derive(serde::Deserialize)]
struct TokenBody {
    chain: String,
}

/// Decodes a body found in `tube`.
pub fn decode_body(tube: &str, body: &[u8]) -> Body {
    if tube == super::CHAINS_TUBE {
        if let Ok(t) = serde_json::from_slice::<TokenBody>(body) {
            return Body::ChainToken { chain: t.chain };
        }
    }
    match Envelope::parse(body) {
        Ok(env) => {
            let extra: Option<Extra> = serde_json::from_slice(body).ok();
            Body::Envelope(EnvelopeView {
                args: serde_json::from_str(env.args.get()).unwrap_or(serde_json::Value::Null),
                run: env.run,
                attempt: env.attempt,
                chain: env.chain.map(str::to_owned),
                prev: env.prev,
                gen: env.gen,
                identity: env.identity().map(str::to_owned),
                tok: extra.as_ref().and_then(|e| e.tok),
                error: extra.and_then(|e| e.err).map(error_text),
                enqueued_at_ms: env.enq,
            })
        }
        Err(e) => {
            let cut = body.len().min(RAW_SHOWN);
            Body::Raw {
                text: String::from_utf8_lossy(&body[..cut]).into_owned(),
                len: body.len(),
                reason: e.to_string(),
            }
        }
    }
}

/// The text of an `err` field: a string as is; an object's `error` (or
/// `message`) field; anything else as JSON.
fn error_text(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Object(ref m) => match m.get("error").or_else(|| m.get("message")) {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => v.to_string(),
        },
        v => v.to_string(),
    }
}

impl JobInfo {
    /// Builds the view from a job's stats and body, on server `addr`.
    pub fn new(at: JobRef, addr: &str, stats: &JobStats, body: &[u8]) -> Self {
        JobInfo {
            at,
            addr: addr.to_owned(),
            tube: stats.tube.clone(),
            state: stats.state,
            pri: stats.pri,
            age: stats.age,
            time_left: stats.time_left,
            ttr: stats.ttr,
            reserves: stats.reserves,
            buries: stats.buries,
            kicks: stats.kicks,
            body: decode_body(&stats.tube, body),
        }
    }

    /// The envelope, when the body is one.
    pub fn envelope(&self) -> Option<&EnvelopeView> {
        match &self.body {
            Body::Envelope(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_envelopes_tokens_and_raw_bodies() {
        let b = decode_body(
            "email",
            br#"{"v":1,"args":{"to":"<script>"},"attempt":2,"chain":"c1","gen":3,"prev":7,"tok":5,"err":"boom","enq":1795756527405}"#,
        );
        let Body::Envelope(e) = b else {
            panic!("{b:?}")
        };
        assert_eq!(e.args["to"], "<script>");
        assert_eq!(
            (e.attempt, e.gen, e.prev, e.chain.as_deref()),
            (2, 3, Some(7), Some("c1"))
        );
        assert_eq!(e.error.as_deref(), Some("boom"));
        assert_eq!(e.tok, Some(5));
        assert_eq!(e.enqueued_at_ms, Some(1_795_756_527_405));

        let b = decode_body(
            "x",
            br#"{"args":{},"err":{"error":"declined","attempt":3}}"#,
        );
        assert_eq!(b_err(&b), Some("declined"));
        let b = decode_body("x", br#"{"args":{},"err":[1]}"#);
        assert_eq!(b_err(&b), Some("[1]"));

        let b = decode_body(
            super::super::CHAINS_TUBE,
            br#"{"bsjobs":"chain-token","chain":"abc"}"#,
        );
        assert!(
            matches!(b, Body::ChainToken { ref chain } if chain == "abc"),
            "{b:?}"
        );

        let b = decode_body("x", b"hello \xff");
        let Body::Raw { text, len, reason } = b else {
            panic!()
        };
        assert_eq!((text.as_str(), len), ("hello \u{fffd}", 7));
        assert!(reason.contains("JSON object"), "{reason}");
    }

    fn b_err(b: &Body) -> Option<&str> {
        match b {
            Body::Envelope(e) => e.error.as_deref(),
            _ => None,
        }
    }
}
