use super::JobId;

/// The longest reply line (without the CRLF) the decoder accepts.
///
/// The longest legitimate line is `USING <200-byte tube>`; anything longer is
/// a corrupt stream, refused before more of it is buffered.
pub const MAX_LINE: usize = 256;

/// The default cap on a reply body (a job or a YAML document): 64 MiB.
///
/// beanstalkd's own default job limit is 65 535 bytes (`-z`); the cap only
/// exists so that a reply claiming a huge body is refused instead of buffered.
pub const MAX_BODY: usize = 64 << 20;

/// One reply from beanstalkd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `INSERTED <id>`: a `put` succeeded.
    Inserted(JobId),
    /// `BURIED <id>`: a `put` or `release` could not grow the priority queue;
    /// the job exists, buried.
    BuriedId(JobId),
    /// `BURIED`: a `bury` succeeded (or `release`: see [`Response::BuriedId`]).
    Buried,
    /// `USING <tube>`.
    Using(String),
    /// `DEADLINE_SOON`: a job reserved by this connection is about to time out.
    DeadlineSoon,
    /// `TIMED_OUT`: `reserve-with-timeout` found nothing.
    TimedOut,
    /// `RESERVED <id> <bytes>` and the job body.
    Reserved {
        /// The job id.
        id: JobId,
        /// The job body.
        body: Vec<u8>,
    },
    /// `FOUND <id> <bytes>` and the job body, from a `peek*`.
    Found {
        /// The job id.
        id: JobId,
        /// The job body.
        body: Vec<u8>,
    },
    /// `DELETED`.
    Deleted,
    /// `NOT_FOUND`.
    NotFound,
    /// `RELEASED`.
    Released,
    /// `TOUCHED`.
    Touched,
    /// `WATCHING <count>`.
    Watching(u32),
    /// `NOT_IGNORED`: the last watched tube cannot be ignored.
    NotIgnored,
    /// `KICKED <count>` (from `kick`).
    KickedCount(u64),
    /// `KICKED` (from `kick-job`).
    Kicked,
    /// `OK <bytes>` and a YAML document (stats and lists).
    Ok(Vec<u8>),
    /// `PAUSED`.
    Paused,
    /// `OUT_OF_MEMORY`.
    OutOfMemory,
    /// `INTERNAL_ERROR`.
    InternalError,
    /// `BAD_FORMAT`.
    BadFormat,
    /// `UNKNOWN_COMMAND`.
    UnknownCommand,
    /// `EXPECTED_CRLF`.
    ExpectedCrlf,
    /// `JOB_TOO_BIG`.
    JobTooBig,
    /// `DRAINING`: the server is in drain mode and accepts no new jobs.
    Draining,
}

/// The byte stream from the server is corrupt; the connection must be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// No CRLF within [`MAX_LINE`] bytes.
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A reply announced a body larger than the configured cap.
    #[error("reply body of {len} bytes exceeds the {max}-byte cap")]
    BodyTooLarge {
        /// Announced length.
        len: u64,
        /// The cap in force.
        max: usize,
    },
    /// The body was not followed by CRLF.
    #[error("reply body not terminated by CRLF")]
    MissingBodyCrlf,
    /// A reply line that is not part of the protocol.
    #[error("unexpected reply line {0:?}")]
    Unexpected(String),
}

fn unexpected(line: &[u8]) -> ProtoError {
    ProtoError::Unexpected(String::from_utf8_lossy(line).into_owned())
}

/// Parses a decimal number that must be the whole of `s`.
fn num<T: std::str::FromStr>(s: &[u8], line: &[u8]) -> Result<T, ProtoError> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(unexpected(line));
    }
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| unexpected(line))
}

/// Decodes one reply from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a reply ("need more"),
/// `Ok(Some((reply, consumed)))` when a whole reply was read, and `Err` when
/// the bytes cannot be a beanstalkd reply. A reply whose body is announced
/// larger than `max_body` is refused before it is buffered.
pub fn decode(buf: &[u8], max_body: usize) -> Result<Option<(Response, usize)>, ProtoError> {
    let scan = &buf[..buf.len().min(MAX_LINE + 2)];
    let Some(eol) = scan.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= MAX_LINE + 2 {
            return Err(ProtoError::LineTooLong);
        }
        return Ok(None);
    };
    let line = &buf[..eol];
    let after_line = eol + 2;
    let (word, rest) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], Some(&line[sp + 1..])),
        None => (line, None),
    };

    let simple = |r: Response| -> Result<Option<(Response, usize)>, ProtoError> {
        if rest.is_some() {
            return Err(unexpected(line));
        }
        Ok(Some((r, after_line)))
    };

    match word {
        b"RESERVED" | b"FOUND" => {
            let rest = rest.ok_or_else(|| unexpected(line))?;
            let mut parts = rest.split(|&b| b == b' ');
            let (Some(id), Some(len), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(unexpected(line));
            };
            let id: JobId = num(id, line)?;
            let body = match body(buf, after_line, len, line, max_body)? {
                Some(b) => b,
                None => return Ok(None),
            };
            let (body, used) = body;
            let r = if word == b"RESERVED" {
                Response::Reserved { id, body }
            } else {
                Response::Found { id, body }
            };
            Ok(Some((r, used)))
        }
        b"OK" => {
            let len = rest.ok_or_else(|| unexpected(line))?;
            match body(buf, after_line, len, line, max_body)? {
                Some((body, used)) => Ok(Some((Response::Ok(body), used))),
                None => Ok(None),
            }
        }
        b"INSERTED" => one_num(rest, line, after_line, Response::Inserted),
        b"WATCHING" => one_num(rest, line, after_line, Response::Watching),
        b"BURIED" => match rest {
            None => Ok(Some((Response::Buried, after_line))),
            Some(_) => one_num(rest, line, after_line, Response::BuriedId),
        },
        b"KICKED" => match rest {
            None => Ok(Some((Response::Kicked, after_line))),
            Some(_) => one_num(rest, line, after_line, Response::KickedCount),
        },
        b"USING" => {
            let tube = rest.ok_or_else(|| unexpected(line))?;
            let tube = std::str::from_utf8(tube).map_err(|_| unexpected(line))?;
            if super::validate_tube(tube).is_err() {
                return Err(unexpected(line));
            }
            Ok(Some((Response::Using(tube.to_owned()), after_line)))
        }
        b"DEADLINE_SOON" => simple(Response::DeadlineSoon),
        b"TIMED_OUT" => simple(Response::TimedOut),
        b"DELETED" => simple(Response::Deleted),
        b"NOT_FOUND" => simple(Response::NotFound),
        b"RELEASED" => simple(Response::Released),
        b"TOUCHED" => simple(Response::Touched),
        b"NOT_IGNORED" => simple(Response::NotIgnored),
        b"PAUSED" => simple(Response::Paused),
        b"OUT_OF_MEMORY" => simple(Response::OutOfMemory),
        b"INTERNAL_ERROR" => simple(Response::InternalError),
        b"BAD_FORMAT" => simple(Response::BadFormat),
        b"UNKNOWN_COMMAND" => simple(Response::UnknownCommand),
        b"EXPECTED_CRLF" => simple(Response::ExpectedCrlf),
        b"JOB_TOO_BIG" => simple(Response::JobTooBig),
        b"DRAINING" => simple(Response::Draining),
        _ => Err(unexpected(line)),
    }
}

fn one_num<T: std::str::FromStr>(
    rest: Option<&[u8]>,
    line: &[u8],
    used: usize,
    make: impl FnOnce(T) -> Response,
) -> Result<Option<(Response, usize)>, ProtoError> {
    let n = num(rest.ok_or_else(|| unexpected(line))?, line)?;
    Ok(Some((make(n), used)))
}

/// Reads a `<len>`-byte body plus CRLF starting at `start`.
#[allow(clippy::type_complexity)]
fn body(
    buf: &[u8],
    start: usize,
    len: &[u8],
    line: &[u8],
    max_body: usize,
) -> Result<Option<(Vec<u8>, usize)>, ProtoError> {
    let len: u64 = num(len, line)?;
    if len > max_body as u64 {
        return Err(ProtoError::BodyTooLarge { len, max: max_body });
    }
    let len = len as usize;
    let end = start + len;
    if buf.len() < end + 2 {
        // Check what is already there, so garbage is reported early.
        if buf.len() > end && buf[end] != b'\r' {
            return Err(ProtoError::MissingBodyCrlf);
        }
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ProtoError::MissingBodyCrlf);
    }
    Ok(Some((buf[start..end].to_vec(), end + 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Response {
        let (r, used) = decode(bytes, MAX_BODY).unwrap().unwrap();
        assert_eq!(used, bytes.len(), "whole reply consumed");
        r
    }

    #[test]
    fn decodes_every_reply() {
        assert_eq!(one(b"INSERTED 12\r\n"), Response::Inserted(12));
        assert_eq!(one(b"BURIED 3\r\n"), Response::BuriedId(3));
        assert_eq!(one(b"BURIED\r\n"), Response::Buried);
        assert_eq!(one(b"USING foo\r\n"), Response::Using("foo".into()));
        assert_eq!(one(b"DEADLINE_SOON\r\n"), Response::DeadlineSoon);
        assert_eq!(one(b"TIMED_OUT\r\n"), Response::TimedOut);
        assert_eq!(
            one(b"RESERVED 5 3\r\nabc\r\n"),
            Response::Reserved {
                id: 5,
                body: b"abc".to_vec()
            }
        );
        assert_eq!(
            one(b"FOUND 5 0\r\n\r\n"),
            Response::Found {
                id: 5,
                body: vec![]
            }
        );
        assert_eq!(one(b"DELETED\r\n"), Response::Deleted);
        assert_eq!(one(b"NOT_FOUND\r\n"), Response::NotFound);
        assert_eq!(one(b"RELEASED\r\n"), Response::Released);
        assert_eq!(one(b"TOUCHED\r\n"), Response::Touched);
        assert_eq!(one(b"WATCHING 2\r\n"), Response::Watching(2));
        assert_eq!(one(b"NOT_IGNORED\r\n"), Response::NotIgnored);
        assert_eq!(one(b"KICKED 9\r\n"), Response::KickedCount(9));
        assert_eq!(one(b"KICKED\r\n"), Response::Kicked);
        assert_eq!(one(b"OK 4\r\n---\n\r\n"), Response::Ok(b"---\n".to_vec()));
        assert_eq!(one(b"PAUSED\r\n"), Response::Paused);
        assert_eq!(one(b"OUT_OF_MEMORY\r\n"), Response::OutOfMemory);
        assert_eq!(one(b"INTERNAL_ERROR\r\n"), Response::InternalError);
        assert_eq!(one(b"BAD_FORMAT\r\n"), Response::BadFormat);
        assert_eq!(one(b"UNKNOWN_COMMAND\r\n"), Response::UnknownCommand);
        assert_eq!(one(b"EXPECTED_CRLF\r\n"), Response::ExpectedCrlf);
        assert_eq!(one(b"JOB_TOO_BIG\r\n"), Response::JobTooBig);
        assert_eq!(one(b"DRAINING\r\n"), Response::Draining);
    }

    #[test]
    fn body_may_contain_crlf() {
        assert_eq!(
            one(b"RESERVED 1 4\r\n\r\n\r\n\r\n"),
            Response::Reserved {
                id: 1,
                body: b"\r\n\r\n".to_vec()
            }
        );
    }

    #[test]
    fn every_split_is_need_more() {
        let full = b"RESERVED 77 5\r\nhello\r\n";
        for cut in 0..full.len() {
            assert_eq!(decode(&full[..cut], MAX_BODY), Ok(None), "cut at {cut}");
        }
        assert!(decode(full, MAX_BODY).unwrap().is_some());
    }

    #[test]
    fn leaves_following_replies_in_buffer() {
        let buf = b"DELETED\r\nINSERTED 4\r\n";
        let (r, used) = decode(buf, MAX_BODY).unwrap().unwrap();
        assert_eq!((r, used), (Response::Deleted, 9));
        let (r, _) = decode(&buf[used..], MAX_BODY).unwrap().unwrap();
        assert_eq!(r, Response::Inserted(4));
    }

    #[test]
    fn refuses_garbage() {
        assert!(decode(b"HELLO\r\n", MAX_BODY).is_err());
        assert!(decode(b"INSERTED x\r\n", MAX_BODY).is_err());
        assert!(decode(b"INSERTED -1\r\n", MAX_BODY).is_err());
        assert!(decode(b"INSERTED\r\n", MAX_BODY).is_err());
        assert!(decode(b"DELETED now\r\n", MAX_BODY).is_err());
        assert!(decode(b"RESERVED 1\r\n", MAX_BODY).is_err());
        assert!(decode(b"RESERVED 1 2 3\r\n", MAX_BODY).is_err());
        assert!(decode(b"INSERTED 99999999999999999999999\r\n", MAX_BODY).is_err());
        assert_eq!(
            decode(b"RESERVED 1 2\r\nabXY", MAX_BODY),
            Err(ProtoError::MissingBodyCrlf)
        );
        assert_eq!(
            decode(b"RESERVED 1 2\r\nabX", MAX_BODY),
            Err(ProtoError::MissingBodyCrlf)
        );
    }

    #[test]
    fn refuses_huge_bodies_and_lines() {
        assert_eq!(
            decode(b"RESERVED 1 1000\r\n", 999),
            Err(ProtoError::BodyTooLarge {
                len: 1000,
                max: 999
            })
        );
        assert!(matches!(
            decode(b"OK 18446744073709551615\r\n", MAX_BODY),
            Err(ProtoError::BodyTooLarge { .. })
        ));
        let long = vec![b'A'; MAX_LINE + 2];
        assert_eq!(decode(&long, MAX_BODY), Err(ProtoError::LineTooLong));
        assert_eq!(decode(&long[..MAX_LINE], MAX_BODY), Ok(None));
    }
}
