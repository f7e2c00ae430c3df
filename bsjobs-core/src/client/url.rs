use crate::Error;

/// One server of a URL and its share of new puts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// `host:port`.
    pub addr: String,
    /// Relative share of new puts (default 1); 0 means drained: no new puts,
    /// workers keep reserving from it until it is empty.
    pub weight: u32,
}

/// Largest weight a URL may give a server.
pub const MAX_WEIGHT: u32 = 1000;

/// Parses `beanstalk://host:port[,host:port…]` (the scheme is optional; the
/// port defaults to 11300) into `host:port` strings, dropping per-server
/// options (see [`parse_servers`]).
pub fn parse_url(url: &str) -> Result<Vec<String>, Error> {
    Ok(parse_servers(url)?.into_iter().map(|s| s.addr).collect())
}

/// Parses `beanstalk://host:port[;option…][,host:port[;option…]…]` into the
/// servers and their weights. Options of one server follow its address,
/// each after a `;`: `weight=N` (0–1000, default 1) gives the server N
/// shares of new puts, `drain` (the same as `weight=0`) gives it none while
/// workers keep reserving from it. Example:
/// `beanstalk://a:11300,b:11300;weight=2,c:11300;drain`.
pub fn parse_servers(url: &str) -> Result<Vec<ServerSpec>, Error> {
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
    let servers = rest
        .split(',')
        .map(|entry| {
            let mut parts = entry.split(';');
            let hp = parts.next().unwrap_or("").trim();
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
            let mut weight = 1;
            for opt in parts {
                match opt.trim().split_once('=') {
                    None if opt.trim() == "drain" => weight = 0,
                    Some(("weight", w)) => {
                        weight = w
                            .trim()
                            .parse::<u32>()
                            .ok()
                            .filter(|w| *w <= MAX_WEIGHT)
                            .ok_or_else(|| bad("weight=N takes a whole number 0-1000"))?;
                    }
                    _ => return Err(bad("unknown server option: expected weight=N or drain")),
                }
            }
            Ok(ServerSpec {
                addr: format!("{host}:{port}"),
                weight,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(servers)
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

    #[test]
    fn parses_weights_and_drain() {
        let s = parse_servers("beanstalk://a:1,b:2;weight=3,c:3;drain,d;weight=0").unwrap();
        let got: Vec<(&str, u32)> = s.iter().map(|s| (s.addr.as_str(), s.weight)).collect();
        assert_eq!(got, [("a:1", 1), ("b:2", 3), ("c:3", 0), ("d:11300", 0)]);
        assert_eq!(
            parse_url("beanstalk://a:1;weight=2,b:2;drain").unwrap(),
            ["a:1", "b:2"]
        );
        for bad in [
            "beanstalk://a:1;weight=x",
            "beanstalk://a:1;weight=1001",
            "beanstalk://a:1;weight=-1",
            "beanstalk://a:1;heavy",
            "beanstalk://;drain",
        ] {
            assert!(parse_servers(bad).is_err(), "{bad}");
        }
    }
}
