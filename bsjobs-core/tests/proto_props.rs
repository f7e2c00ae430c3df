//! Property tests of the sans-IO reply decoder and the stats parsers.
//!
//! The decoder must never panic, never claim more bytes than it was given,
//! answer "need more" for every strict prefix of a reply, decode a stream the
//! same way however it is chunked, and refuse oversized bodies and endless
//! lines before buffering them.

use bsjobs_core::proto::stats::{parse_list, JobState, JobStats, ServerStats, TubeStats};
use bsjobs_core::proto::{decode, ProtoError, Response, MAX_BODY, MAX_LINE};
use proptest::prelude::*;

/// Encodes a reply the way beanstalkd writes it.
fn encode(r: &Response, out: &mut Vec<u8>) {
    let line = |out: &mut Vec<u8>, s: String| {
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    let with_body = |out: &mut Vec<u8>, head: String, body: &[u8]| {
        line(out, head);
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    };
    match r {
        Response::Inserted(id) => line(out, format!("INSERTED {id}")),
        Response::BuriedId(id) => line(out, format!("BURIED {id}")),
        Response::Buried => line(out, "BURIED".into()),
        Response::Using(t) => line(out, format!("USING {t}")),
        Response::DeadlineSoon => line(out, "DEADLINE_SOON".into()),
        Response::TimedOut => line(out, "TIMED_OUT".into()),
        Response::Reserved { id, body } => {
            with_body(out, format!("RESERVED {id} {}", body.len()), body)
        }
        Response::Found { id, body } => with_body(out, format!("FOUND {id} {}", body.len()), body),
        Response::Deleted => line(out, "DELETED".into()),
        Response::NotFound => line(out, "NOT_FOUND".into()),
        Response::Released => line(out, "RELEASED".into()),
        Response::Touched => line(out, "TOUCHED".into()),
        Response::Watching(n) => line(out, format!("WATCHING {n}")),
        Response::NotIgnored => line(out, "NOT_IGNORED".into()),
        Response::KickedCount(n) => line(out, format!("KICKED {n}")),
        Response::Kicked => line(out, "KICKED".into()),
        Response::Ok(body) => with_body(out, format!("OK {}", body.len()), body),
        Response::Paused => line(out, "PAUSED".into()),
        Response::OutOfMemory => line(out, "OUT_OF_MEMORY".into()),
        Response::InternalError => line(out, "INTERNAL_ERROR".into()),
        Response::BadFormat => line(out, "BAD_FORMAT".into()),
        Response::UnknownCommand => line(out, "UNKNOWN_COMMAND".into()),
        Response::ExpectedCrlf => line(out, "EXPECTED_CRLF".into()),
        Response::JobTooBig => line(out, "JOB_TOO_BIG".into()),
        Response::Draining => line(out, "DRAINING".into()),
    }
}

fn encoded(r: &Response) -> Vec<u8> {
    let mut v = Vec::new();
    encode(r, &mut v);
    v
}

/// A tube name beanstalkd accepts: 1–200 bytes of `[A-Za-z0-9+/;.$_()-]`,
/// not starting with `-`.
fn tube() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]{0,199}"
}

/// Job bodies: arbitrary bytes, with CR, LF and CRLF made common, since a body
/// that looks like a reply terminator is the interesting case.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..16),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\r".to_vec()),
        1 => Just(b"\n".to_vec()),
        1 => Just(b"RESERVED 1 2\r\n".to_vec()),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|ps| ps.concat())
}

/// Every kind of reply.
fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        any::<u64>().prop_map(Response::Inserted),
        any::<u64>().prop_map(Response::BuriedId),
        Just(Response::Buried),
        tube().prop_map(Response::Using),
        Just(Response::DeadlineSoon),
        Just(Response::TimedOut),
        (any::<u64>(), body()).prop_map(|(id, body)| Response::Reserved { id, body }),
        (any::<u64>(), body()).prop_map(|(id, body)| Response::Found { id, body }),
        Just(Response::Deleted),
        Just(Response::NotFound),
        Just(Response::Released),
        Just(Response::Touched),
        any::<u32>().prop_map(Response::Watching),
        Just(Response::NotIgnored),
        any::<u64>().prop_map(Response::KickedCount),
        Just(Response::Kicked),
        body().prop_map(Response::Ok),
        Just(Response::Paused),
        Just(Response::OutOfMemory),
        Just(Response::InternalError),
        Just(Response::BadFormat),
        Just(Response::UnknownCommand),
        Just(Response::ExpectedCrlf),
        Just(Response::JobTooBig),
        Just(Response::Draining),
    ]
}

/// Bytes that start like a reply and then go anywhere, so that fuzzing gets
/// past the first word.
fn reply_like() -> impl Strategy<Value = Vec<u8>> {
    let head = prop::sample::select(vec![
        &b"RESERVED "[..],
        b"FOUND ",
        b"OK ",
        b"INSERTED ",
        b"BURIED",
        b"KICKED",
        b"WATCHING ",
        b"USING ",
        b"DELETED",
        b"",
    ]);
    let tail = prop::collection::vec(
        prop_oneof![
            any::<u8>(),
            prop::sample::select(b"0123456789 \r\n".to_vec()),
        ],
        0..64,
    );
    (head, tail, prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(h, t, rest)| [h, &t[..], &rest[..]].concat())
}

/// Garbage of at least `MAX_LINE + 2` bytes with no CRLF in it.
fn endless_line() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), MAX_LINE + 2..MAX_LINE + 600).prop_map(|mut v| {
        for i in 1..v.len() {
            if v[i - 1] == b'\r' && v[i] == b'\n' {
                v[i] = b'x';
            }
        }
        v
    })
}

/// Checks the decoder's contract on any input.
fn check_contract(buf: &[u8], max_body: usize) {
    if let Ok(Some((_, n))) = decode(buf, max_body) {
        assert!(n > 0 && n <= buf.len(), "consumed {n} of {}", buf.len());
    }
}

/// Feeds `stream` to a growing buffer `chunks` bytes at a time, draining every
/// complete reply; returns the replies and what is left in the buffer.
fn feed(stream: &[u8], chunks: &[usize]) -> (Vec<Response>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some((r, used)) = decode(&buf, MAX_BODY).expect("valid stream") {
            out.push(r);
            buf.drain(..used);
        }
    }
    (out, buf)
}

/// Lines of `key: value` built from known keys, for stats-parser fuzzing.
fn stats_like() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec![
        "id",
        "tube",
        "state",
        "pri",
        "time-left",
        "name",
        "pause-time-left",
        "rusage-utime",
        "draining",
        "version",
        "-",
        "",
    ]);
    let value = prop_oneof![
        "[0-9]{0,25}",
        "-[0-9]{0,25}",
        "\"[a-z.]{0,5}\"?",
        "(ready|delayed|reserved|buried|true|false|NaN)",
        any::<String>(),
    ];
    let line = (
        key,
        prop::sample::select(vec![": ", ":", " ", ":  ", ""]),
        value,
    )
        .prop_map(|(k, sep, v)| format!("{k}{sep}{v}\n"));
    (any::<bool>(), prop::collection::vec(line, 0..24)).prop_map(|(header, lines)| {
        let mut doc = if header {
            b"---\n".to_vec()
        } else {
            Vec::new()
        };
        doc.extend(lines.concat().into_bytes());
        doc
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_contract(&buf, MAX_BODY);
        check_contract(&buf, 0);
    }

    #[test]
    fn reply_like_bytes_never_panic(buf in reply_like(), max_body in 0usize..100) {
        check_contract(&buf, MAX_BODY);
        check_contract(&buf, max_body);
        for cut in 0..buf.len() {
            check_contract(&buf[..cut], max_body);
        }
    }

    #[test]
    fn every_strict_prefix_needs_more(r in response(), suffix in prop::collection::vec(any::<u8>(), 0..16)) {
        let bytes = encoded(&r);
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode(&bytes[..cut], MAX_BODY), Ok(None), "cut at {}", cut);
        }
        prop_assert_eq!(decode(&bytes, MAX_BODY), Ok(Some((r.clone(), bytes.len()))));
        // Whatever follows a reply is left for the next call.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&suffix);
        prop_assert_eq!(decode(&longer, MAX_BODY), Ok(Some((r, bytes.len()))));
    }

    #[test]
    fn streams_decode_in_order_however_chunked(
        rs in prop::collection::vec(response(), 1..8),
        chunks in prop::collection::vec(1usize..64, 1..16),
    ) {
        let mut stream = Vec::new();
        for r in &rs {
            encode(r, &mut stream);
        }

        // All at once, front to back.
        let mut at = 0;
        let mut whole = Vec::new();
        while let Some((r, used)) = decode(&stream[at..], MAX_BODY).expect("valid stream") {
            whole.push(r);
            at += used;
        }
        prop_assert_eq!(at, stream.len());
        prop_assert_eq!(&whole, &rs);

        // Chunk by chunk through an appending, draining buffer.
        let (chunked, left) = feed(&stream, &chunks);
        prop_assert_eq!(&chunked, &rs);
        prop_assert!(left.is_empty());

        // One byte at a time.
        let (bytewise, left) = feed(&stream, &[1]);
        prop_assert_eq!(&bytewise, &rs);
        prop_assert!(left.is_empty());
    }

    #[test]
    fn oversized_bodies_are_refused_before_they_arrive(
        head in prop::sample::select(vec!["RESERVED 7 ", "FOUND 7 ", "OK "]),
        max_body in 0usize..(1 << 20),
        excess in 1u64..=u64::MAX - (1 << 20),
        arrived in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let len = max_body as u64 + excess;
        let mut buf = format!("{head}{len}\r\n").into_bytes();
        let expected = Err(ProtoError::BodyTooLarge { len, max: max_body });
        prop_assert_eq!(decode(&buf, max_body), expected.clone());
        buf.extend_from_slice(&arrived);
        prop_assert_eq!(decode(&buf, max_body), expected);
    }

    #[test]
    fn a_corrupt_body_terminator_is_refused_as_soon_as_it_arrives(
        r in prop_oneof![
            (any::<u64>(), body()).prop_map(|(id, body)| Response::Reserved { id, body }),
            (any::<u64>(), body()).prop_map(|(id, body)| Response::Found { id, body }),
            body().prop_map(Response::Ok),
        ],
        at_lf in any::<bool>(),
        bad in any::<u8>(),
    ) {
        let mut bytes = encoded(&r);
        let pos = bytes.len() - if at_lf { 1 } else { 2 };
        let good = bytes[pos];
        prop_assume!(bad != good);
        bytes[pos] = bad;
        for cut in 0..=pos {
            prop_assert_eq!(decode(&bytes[..cut], MAX_BODY), Ok(None), "cut at {}", cut);
        }
        for cut in pos + 1..=bytes.len() {
            prop_assert_eq!(
                decode(&bytes[..cut], MAX_BODY),
                Err(ProtoError::MissingBodyCrlf),
                "cut at {}", cut
            );
        }
    }

    #[test]
    fn endless_lines_are_refused(garbage in endless_line(), tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut buf = garbage.clone();
        buf.extend_from_slice(&tail);
        // Fewer bytes may still become a line; from MAX_LINE + 2 on they can't.
        for end in 0..MAX_LINE + 2 {
            prop_assert_eq!(decode(&buf[..end], MAX_BODY), Ok(None));
        }
        for end in MAX_LINE + 2..=buf.len() {
            prop_assert_eq!(decode(&buf[..end], MAX_BODY), Err(ProtoError::LineTooLong));
        }
    }

    #[test]
    fn stats_parsers_never_panic(buf in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = JobStats::parse(&buf);
        let _ = TubeStats::parse(&buf);
        let _ = ServerStats::parse(&buf);
        let _ = parse_list(&buf);
    }

    #[test]
    fn stats_parsers_never_panic_on_stats_like_bytes(doc in stats_like()) {
        let _ = JobStats::parse(&doc);
        let _ = TubeStats::parse(&doc);
        let _ = ServerStats::parse(&doc);
        let _ = parse_list(&doc);
    }

    #[test]
    fn job_stats_round_trip(
        id in any::<u64>(),
        tube in tube(),
        state in prop::sample::select(vec![JobState::Ready, JobState::Delayed, JobState::Reserved, JobState::Buried]),
        (pri, delay, ttr, file) in (any::<u32>(), any::<u32>(), any::<u32>(), any::<u64>()),
        age in any::<u64>(),
        time_left in any::<i64>(),
        counts in any::<[u64; 5]>(),
        quote in any::<bool>(),
    ) {
        let q = if quote { "\"" } else { "" };
        let yaml = format!(
            "---\nid: {id}\ntube: {q}{tube}{q}\nstate: {state}\npri: {pri}\nage: {age}\n\
             delay: {delay}\nttr: {ttr}\ntime-left: {time_left}\nfile: {file}\n\
             reserves: {}\ntimeouts: {}\nreleases: {}\nburies: {}\nkicks: {}\n",
            counts[0], counts[1], counts[2], counts[3], counts[4],
        );
        let expected = JobStats {
            id, tube, state, pri, age, delay, ttr, time_left, file,
            reserves: counts[0], timeouts: counts[1], releases: counts[2],
            buries: counts[3], kicks: counts[4],
        };
        prop_assert_eq!(JobStats::parse(yaml.as_bytes()), Ok(expected));
    }

    #[test]
    fn lists_round_trip(tubes in prop::collection::vec(tube(), 0..10)) {
        let mut yaml = String::from("---\n");
        for t in &tubes {
            yaml.push_str(&format!("- {t}\n"));
        }
        prop_assert_eq!(parse_list(yaml.as_bytes()), Ok(tubes));
    }
}
