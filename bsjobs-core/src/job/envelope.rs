use serde::Deserialize;
use serde_json::value::RawValue;

/// The envelope version this crate writes.
pub const ENVELOPE_VERSION: u32 = 1;

/// The JSON body of every bsjobs job.
///
/// ```json
/// {"v":1,"args":{"to":"a@b.c","subject":"Hi"},"run":0,"attempt":0,"chain":"5f0c…"}
/// ```
/// Only `args` is required: a producer in any language may put
/// `{"args":{…}}` into the tube and a Rust worker runs it. `args` is an object
/// keyed by the function's parameter names.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// Envelope version; 1 when absent.
    #[serde(default = "one")]
    pub v: u32,
    /// The arguments, kept raw until the handler decodes them.
    #[serde(borrow)]
    pub args: &'a RawValue,
    /// Successful runs of this repeating chain completed before this one.
    #[serde(default)]
    pub run: u32,
    /// Failed attempts of this run so far.
    #[serde(default)]
    pub attempt: u32,
    /// Identity of a repeating chain, shared by all its runs.
    #[serde(default, borrow)]
    pub chain: Option<&'a str>,
    /// Stable identity of a one-shot job, kept by its retries, burial and
    /// kicks (a chain's identity is its `chain`). See [`Envelope::identity`].
    #[serde(default, borrow)]
    pub id: Option<&'a str>,
    /// Priority the producer chose, kept for later runs.
    #[serde(default)]
    pub pri: Option<u32>,
    /// TTR the producer chose, kept for later runs.
    #[serde(default)]
    pub ttr: Option<u32>,
    /// Id of the job this one replaced (the previous run or attempt).
    #[serde(default)]
    pub prev: Option<u64>,
    /// Generation of a repeating chain: bumped by every job that replaces
    /// another (next run or retry). The worker keeps the newest generation
    /// of each chain in beanstalkd and deletes, unrun, a job of an older
    /// one: the twin a server crash can leave behind (see the worker's
    /// chain token).
    #[serde(default)]
    pub gen: u32,
    /// beanstalkd id of the chain's token (a job in tube `bsjobs.chains`
    /// whose priority names the chain's current job). Set at enqueue for
    /// repeating jobs; see the worker's chain module.
    #[serde(default)]
    pub tok: Option<u64>,
    /// The tick of a cron job's schedule this job runs for (Unix seconds).
    #[serde(default)]
    pub tick: Option<i64>,
    /// When this job became (or becomes) due, in Unix milliseconds: its
    /// put plus its delay. Queue latency is measured from here.
    #[serde(default)]
    pub due: Option<i64>,
    /// When the job was first enqueued, in Unix milliseconds: stamped by
    /// the producer's client and copied unchanged by every job that
    /// continues it (retries, burial copies, the runs of a chain, whose
    /// `enq` is when the chain was enqueued).
    #[serde(default)]
    pub enq: Option<i64>,
    /// Metadata added by enqueue hooks, as a JSON object.
    #[serde(default, borrow)]
    pub meta: Option<&'a RawValue>,
    /// Why this job was buried: set only on the copy the worker buries
    /// (see the worker's settle module).
    #[serde(default, borrow)]
    pub err: Option<&'a RawValue>,
    /// Burial records of earlier lives of this job (before kicks), oldest
    /// first, as a JSON array.
    #[serde(default, borrow)]
    pub history: Option<&'a RawValue>,
}

fn one() -> u32 {
    ENVELOPE_VERSION
}

impl<'a> Envelope<'a> {
    /// Parses a job body.
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        // serde would also read a struct from a JSON array, by position; the
        // envelope and its arguments are documented as objects, keyed by name.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(serde::de::Error::custom(
                "the job body must be a JSON object",
            ));
        }
        let env: Envelope<'a> = serde_json::from_slice(body)?;
        if !env.args.get().starts_with('{') {
            return Err(serde::de::Error::custom(
                "`args` must be a JSON object keyed by parameter name",
            ));
        }
        if env.v != ENVELOPE_VERSION {
            return Err(serde::de::Error::custom(format!(
                "unsupported envelope version {} (this worker reads version {ENVELOPE_VERSION})",
                env.v
            )));
        }
        Ok(env)
    }

    /// The job's stable identity: the same for its whole life, across
    /// retries, burial, kicks and (for a chain) runs; `None` for a body a
    /// foreign producer put without one.
    pub fn identity(&self) -> Option<&'a str> {
        self.id.or(self.chain)
    }

    /// Writes an envelope with the given fields.
    pub fn write(out: &mut Vec<u8>, args: &[u8], fields: Fields<'_>) {
        use std::io::Write as _;
        out.extend_from_slice(b"{\"v\":1,\"args\":");
        out.extend_from_slice(args);
        if fields.run != 0 {
            let _ = write!(out, ",\"run\":{}", fields.run);
        }
        if fields.attempt != 0 {
            let _ = write!(out, ",\"attempt\":{}", fields.attempt);
        }
        if let Some(i) = fields.id {
            out.extend_from_slice(b",\"id\":");
            let _ = serde_json::to_writer(&mut *out, i);
        }
        if let Some(c) = fields.chain {
            // Chain ids are generated hex strings; serialize anyway so that a
            // foreign chain id cannot break the JSON.
            out.extend_from_slice(b",\"chain\":");
            let _ = serde_json::to_writer(&mut *out, c);
        }
        if let Some(p) = fields.pri {
            let _ = write!(out, ",\"pri\":{p}");
        }
        if let Some(t) = fields.ttr {
            let _ = write!(out, ",\"ttr\":{t}");
        }
        if let Some(p) = fields.prev {
            let _ = write!(out, ",\"prev\":{p}");
        }
        if fields.gen != 0 {
            let _ = write!(out, ",\"gen\":{}", fields.gen);
        }
        if let Some(t) = fields.tok {
            let _ = write!(out, ",\"tok\":{t}");
        }
        if let Some(t) = fields.tick {
            let _ = write!(out, ",\"tick\":{t}");
        }
        if let Some(d) = fields.due {
            let _ = write!(out, ",\"due\":{d}");
        }
        if let Some(e) = fields.enq {
            let _ = write!(out, ",\"enq\":{e}");
        }
        for (key, raw) in [
            ("meta", fields.meta),
            ("err", fields.err),
            ("history", fields.history),
        ] {
            if let Some(raw) = raw {
                let _ = write!(out, ",\"{key}\":{raw}");
            }
        }
        out.push(b'}');
    }

    /// The envelope of the job that replaces job `prev`: same args, chain
    /// and overrides, with new counters and the next generation.
    pub fn successor(&self, prev: u64, run: u32, attempt: u32) -> Vec<u8> {
        let history = self.merged_history();
        let mut out = Vec::with_capacity(self.args.get().len() + 80);
        Self::write(
            &mut out,
            self.args.get().as_bytes(),
            Fields {
                history: history.as_deref().or(self.history.map(RawValue::get)),
                ..self.next_fields(prev, run, attempt)
            },
        );
        out
    }

    /// The burial history of a kicked job's successor: the earlier records
    /// plus this job's own `err`.
    pub(crate) fn merged_history(&self) -> Option<String> {
        let err = self.err?;
        let mut items: Vec<&RawValue> = self
            .history
            .and_then(|h| serde_json::from_str(h.get()).ok())
            .unwrap_or_default();
        items.push(err);
        serde_json::to_string(&items).ok()
    }

    /// Like [`Envelope::successor`], for the run of a cron job at `tick`.
    pub fn successor_at(&self, prev: u64, run: u32, tick: i64) -> Vec<u8> {
        let history = self.merged_history();
        let mut out = Vec::with_capacity(self.args.get().len() + 100);
        Self::write(
            &mut out,
            self.args.get().as_bytes(),
            Fields {
                tick: Some(tick),
                history: history.as_deref().or(self.history.map(RawValue::get)),
                ..self.next_fields(prev, run, 0)
            },
        );
        out
    }

    fn next_fields(&self, prev: u64, run: u32, attempt: u32) -> Fields<'a> {
        Fields {
            run,
            attempt,
            prev: Some(prev),
            gen: self.gen.wrapping_add(1),
            due: None,
            err: None,
            ..self.fields()
        }
    }

    /// The fields of this envelope, for writing a changed copy.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            run: self.run,
            attempt: self.attempt,
            chain: self.chain,
            id: self.id,
            pri: self.pri,
            ttr: self.ttr,
            prev: self.prev,
            gen: self.gen,
            tok: self.tok,
            tick: self.tick,
            due: self.due,
            enq: self.enq,
            meta: self.meta.map(RawValue::get),
            err: self.err.map(RawValue::get),
            history: self.history.map(RawValue::get),
        }
    }
}

/// The envelope fields besides `v` and `args`; zero and `None` are omitted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields<'a> {
    /// Successful runs before this job.
    pub run: u32,
    /// Failed attempts before this job.
    pub attempt: u32,
    /// Chain id of a repeating job.
    pub chain: Option<&'a str>,
    /// Stable identity of a one-shot job.
    pub id: Option<&'a str>,
    /// Priority override.
    pub pri: Option<u32>,
    /// TTR override.
    pub ttr: Option<u32>,
    /// The job this one replaced.
    pub prev: Option<u64>,
    /// Chain generation.
    pub gen: u32,
    /// The chain's token job.
    pub tok: Option<u64>,
    /// A cron job's tick (Unix seconds).
    pub tick: Option<i64>,
    /// When the job is due (Unix milliseconds).
    pub due: Option<i64>,
    /// When the job was first enqueued (Unix milliseconds).
    pub enq: Option<i64>,
    /// Hook metadata: a JSON object, written as is.
    pub meta: Option<&'a str>,
    /// Burial record: a JSON object, written as is.
    pub err: Option<&'a str>,
    /// Earlier burial records: a JSON array, written as is.
    pub history: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_envelope_parses() {
        let e = Envelope::parse(br#"{"args":{"a":1}}"#).unwrap();
        assert_eq!((e.v, e.run, e.attempt, e.chain), (1, 0, 0, None));
        assert_eq!(e.args.get(), r#"{"a":1}"#);
    }

    #[test]
    fn successor_round_trips() {
        let e = Envelope::parse(br#"{"v":1,"args":{"a":[1,2]},"chain":"ab","pri":3}"#).unwrap();
        let next = e.successor(9, 4, 1);
        let n = Envelope::parse(&next).unwrap();
        assert_eq!(n.prev, Some(9));
        assert_eq!(n.gen, 1);
        assert_eq!(Envelope::parse(&n.successor(10, 5, 0)).unwrap().gen, 2);
        assert_eq!(
            (n.run, n.attempt, n.chain, n.pri, n.ttr),
            (4, 1, Some("ab"), Some(3), None)
        );
        assert_eq!(n.args.get(), r#"{"a":[1,2]}"#);
        let first =
            Envelope::parse(br#"{"args":{},"id":"x","enq":1700000000123,"due":5}"#).unwrap();
        let retry = first.successor(3, 0, 1);
        let retry = Envelope::parse(&retry).unwrap();
        assert_eq!((retry.enq, retry.due), (Some(1_700_000_000_123), None));
        assert_eq!(
            Envelope::parse(&retry.successor_at(4, 1, 60)).unwrap().enq,
            Some(1_700_000_000_123)
        );
        let t = Envelope::parse(br#"{"args":{},"chain":"c","tok":77}"#).unwrap();
        assert_eq!(
            Envelope::parse(&t.successor(1, 1, 0)).unwrap().tok,
            Some(77)
        );
    }

    #[test]
    fn rejects_bad_bodies() {
        for body in [
            &b""[..],
            b"{}",
            b"not json",
            b"\xff\xfe",
            br#"{"v":2,"args":{}}"#,
            br#"{"args":{}"#,
            br#"[1,{"a":1}]"#,
            br#"{"args":[1]}"#,
            br#"{"args":null}"#,
        ] {
            assert!(Envelope::parse(body).is_err(), "{body:?}");
        }
        let deep = format!(
            "{{\"args\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(Envelope::parse(deep.as_bytes()).is_err());
    }
}
