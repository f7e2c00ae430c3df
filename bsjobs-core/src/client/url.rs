use crate::Error;

/// Parses `beanstalk://host:port[,host:port…]` (the scheme is optional; the
/// port defaults to 11300) into `host:port` strings.
pub fn parse_url(url: &str) -> Result<Vec<String>, Error> {
    let bad = |reason| Error::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let rest = url.trim();
    let rest = match rest.split_once("://") {
        Some(("beanstalk" | "beanstalkd", r)) => r,
        Some(_) => return Err(bad("the scheme must be beanstalk://")),
        None => rest,
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(bad("no host"));
    }
    rest.split(',')
        .map(|hp| {
            let hp = hp.trim();
            if hp.is_empty() {
                return Err(bad("empty server in list"));
            }
            if hp.contains('/') || hp.contains('@') || hp.contains('?') {
                return Err(bad("expected host:port with no path, user or query"));
            }
            let (host, port) = match hp.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (h, p),
                _ => (hp, "11300"),
            };
            if host.is_empty() {
                return Err(bad("no host"));
            }
            port.parse::<u16>()
                .map_err(|_| bad("the port must be a number 1-65535"))?;
            Ok(format!("{host}:{port}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("beanstalk://127.0.0.1:11301").unwrap(),
            ["127.0.0.1:11301"]
        );
        assert_eq!(parse_url("localhost").unwrap(), ["localhost:11300"]);
        assert_eq!(parse_url("beanstalk://a:1,b:2/").unwrap(), ["a:1", "b:2"]);
        assert_eq!(parse_url("beanstalk://[::1]:5").unwrap(), ["[::1]:5"]);
        assert!(parse_url("http://x:1").is_err());
        assert!(parse_url("beanstalk://x:notaport").is_err());
        assert!(parse_url("beanstalk://").is_err());
        assert!(parse_url("beanstalk://a:1,,b:2").is_err());
    }
}
