//! Authentication, cross-site request protection and security headers,
//! applied to every route.

use crate::{Auth, Inner};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::sync::Arc;

/// The header an action must carry, holding the page's token.
pub(crate) const CSRF_HEADER: &str = "x-bsjobs-csrf";
const COOKIE: &str = "bsjobs_token";

/// The page may only run its own script and style, load nothing from
/// elsewhere, and not be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) async fn guard(State(inner): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    let mut set_cookie = None;
    if let Err(why) = host_allowed(&inner, req.headers()) {
        return with_headers((StatusCode::MISDIRECTED_REQUEST, why).into_response());
    }
    if let Some(auth) = &inner.auth {
        match check_auth(auth, &req) {
            Ok(cookie) => set_cookie = cookie,
            Err(r) => return with_headers(*r),
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Err(why) = same_origin(&inner.csrf, req.headers()) {
            return with_headers((StatusCode::FORBIDDEN, why).into_response());
        }
    }
    let mut resp = next.run(req).await;
    if let Some(c) = set_cookie {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    with_headers(resp)
}

fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `Ok(Some(cookie))`: authenticated by `?token=`, remember it in a cookie.
fn check_auth(auth: &Auth, req: &Request) -> Result<Option<String>, Box<Response>> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth {
        Auth::Token(token) => {
            if let Some(b) = given.and_then(|g| g.strip_prefix("Bearer ")) {
                if eq(b.trim().as_bytes(), token.as_bytes()) {
                    return Ok(None);
                }
            }
            let want = hex(token.as_bytes());
            if cookies(req.headers()).any(|(k, v)| k == COOKIE && eq(v.as_bytes(), want.as_bytes()))
            {
                return Ok(None);
            }
            let query = req.uri().query().unwrap_or("");
            if query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .any(|(k, v)| k == "token" && eq(percent_decode(v).as_bytes(), token.as_bytes()))
            {
                return Ok(Some(format!(
                    "{COOKIE}={want}; HttpOnly; SameSite=Strict; Path=/"
                )));
            }
            Err(Box::new(
                (
                    StatusCode::UNAUTHORIZED,
                    "this dashboard needs its token: Authorization: Bearer <token>, or open /?token=<token>",
                )
                    .into_response(),
            ))
        }
        Auth::Basic { user, password } => {
            let ok = given
                .and_then(|g| g.strip_prefix("Basic "))
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .is_some_and(|pair| {
                    let want = format!("{user}:{password}");
                    eq(&pair, want.as_bytes())
                });
            if ok {
                return Ok(None);
            }
            let mut r = (StatusCode::UNAUTHORIZED, "authentication required").into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"bsjobs\", charset=\"UTF-8\""),
            );
            Err(Box::new(r))
        }
    }
}

/// An action must come from the dashboard's own page: it carries the page's
/// token, and the browser does not say it comes from elsewhere.
pub(crate) fn same_origin(csrf: &str, h: &HeaderMap) -> Result<(), &'static str> {
    let token = h
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !eq(token.as_bytes(), csrf.as_bytes()) {
        return Err("missing or wrong X-Bsjobs-Csrf token: actions come from the dashboard page");
    }
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err("cross-site request refused");
        }
    }
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        if origin_host != host {
            return Err("request from another origin refused");
        }
    }
    Ok(())
}

/// Without authentication only loopback names are served (or the hosts
/// allowed by [`crate::Dashboard::allow_hosts`]): a page on another site
/// whose name was re-pointed at 127.0.0.1 (DNS rebinding) would otherwise
/// be same-origin with the dashboard, read its action token and act.
fn host_allowed(inner: &Inner, h: &HeaderMap) -> Result<(), &'static str> {
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    let name = name.to_ascii_lowercase();
    let ok = match &inner.hosts {
        crate::Hosts::Any => true,
        crate::Hosts::Listed(list) => list.iter().any(|h| h.eq_ignore_ascii_case(&name)),
        crate::Hosts::Default if inner.auth.is_some() => true,
        crate::Hosts::Default => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    };
    if ok {
        Ok(())
    } else {
        Err("this dashboard answers to loopback host names only (set --token or --basic, or allow the host)")
    }
}

fn cookies(h: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
}

/// Compares without stopping at the first difference.
fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn actions_need_the_token_and_the_same_origin() {
        let ok = [(CSRF_HEADER, "t0k"), ("host", "127.0.0.1:8080")];
        assert!(same_origin("t0k", &headers(&ok)).is_ok());
        assert!(same_origin("t0k", &headers(&[("host", "h")])).is_err());
        assert!(same_origin("t0k", &headers(&[(CSRF_HEADER, "t0K")])).is_err());
        let mut h = headers(&ok);
        h.insert("origin", "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin("t0k", &h).is_ok());
        h.insert("origin", "http://evil.example".parse().unwrap());
        assert!(same_origin("t0k", &h).is_err());
        let mut h = headers(&ok);
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(same_origin("t0k", &h).is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2"), "a b c%2");
        assert_eq!(percent_decode("%41%zz"), "A%zz");
    }
}
