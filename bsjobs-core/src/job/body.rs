//! Raw-body jobs: the body a foreign producer put, handed to the handler as
//! it is (`Vec<u8>`), as UTF-8 text (`String`) or read as JSON (`T`).

use serde::de::DeserializeOwned;

/// Why the body of a raw job cannot be handed to its function; the job is
/// buried.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The function takes a `String` and the body is not UTF-8.
    #[error("the body is not UTF-8 text: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    /// The function takes a deserializable type and the body is not that JSON.
    #[error("the body is not the JSON the job takes: {0}")]
    Json(#[from] serde_json::Error),
}

/// The body as UTF-8 text.
pub fn decode_text(body: &[u8]) -> Result<String, BodyError> {
    Ok(std::str::from_utf8(body)?.to_owned())
}

/// The whole body read as JSON into `T`.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    Ok(serde_json::from_slice(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_bodies_decode_or_say_why() {
        assert_eq!(decode_text("grüße".as_bytes()).unwrap(), "grüße");
        assert!(matches!(decode_text(b"\xff\xfe"), Err(BodyError::Utf8(_))));
        let v: Vec<u32> = decode_json(b" [1, 2] ").unwrap();
        assert_eq!(v, [1, 2]);
        assert!(matches!(
            decode_json::<Vec<u32>>(b"[1,"),
            Err(BodyError::Json(_))
        ));
        assert!(matches!(decode_json::<u8>(b"300"), Err(BodyError::Json(_))));
    }
}
