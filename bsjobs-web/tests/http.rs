//! The dashboard's HTTP side: authentication, cross-site protection,
//! read-only mode, mounting under a path, embedded assets.

use bsjobs_core::admin::Admin;
use bsjobs_core::testing::{put_buried, Beanstalkd};
use bsjobs_web::{Auth, Dashboard};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One HTTP/1.1 request over a fresh connection.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    Reply {
        status: head[9..12].parse().unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn serve(app: axum::Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"bsjobs-csrf\" content=\"").unwrap() + 28;
    page[at..at + 32].to_owned()
}

#[tokio::test]
async fn actions_need_the_page_token_and_the_same_origin() {
    let server = Beanstalkd::start();
    let id = put_buried(&server.addr(), "t", 1, b"{\"args\":{}}")
        .await
        .unwrap();
    let addr = serve(Dashboard::new(Admin::from_url(&server.url()).unwrap()).router()).await;

    let page = http(addr, "GET", "/", &[], "").await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let token = csrf_of(&page.body);
    let kick = format!(r#"{{"action":"kick","job":{{"server":0,"id":{id}}}}}"#);
    let json = ("Content-Type", "application/json");

    let r = http(addr, "POST", "/api/action", &[json], &kick).await;
    assert_eq!(r.status, 403, "no token: {}", r.body);
    let r = http(
        addr,
        "POST",
        "/api/action",
        &[json, ("X-Bsjobs-Csrf", "0123")],
        &kick,
    )
    .await;
    assert_eq!(r.status, 403, "wrong token");
    let r = http(
        addr,
        "POST",
        "/api/action",
        &[
            json,
            ("X-Bsjobs-Csrf", &token),
            ("Origin", "http://evil.example"),
        ],
        &kick,
    )
    .await;
    assert_eq!(r.status, 403, "another origin");
    let r = http(
        addr,
        "POST",
        "/api/action",
        &[
            json,
            ("X-Bsjobs-Csrf", &token),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        &kick,
    )
    .await;
    assert_eq!(r.status, 403, "cross-site");
    // A form post (what a cross-site page can send without CORS) is refused.
    let r = http(
        addr,
        "POST",
        "/api/action",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Bsjobs-Csrf", &token),
        ],
        "action=kick",
    )
    .await;
    assert_ne!(r.status, 200);
    let c = bsjobs_core::Client::new(&server.url()).unwrap();
    assert_eq!(
        c.stats_tube(0, "t").await.unwrap().current_jobs_buried,
        1,
        "nothing moved yet"
    );

    let origin = format!("http://{addr}");
    let r = http(
        addr,
        "POST",
        "/api/action",
        &[
            json,
            ("X-Bsjobs-Csrf", &token),
            ("Origin", &origin),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        &kick,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&format!("kicked job {id}")), "{}", r.body);
    assert_eq!(c.stats_tube(0, "t").await.unwrap().current_jobs_ready, 1);

    // An absent job is a 404 with a message, not a crash.
    let r = http(
        addr,
        "POST",
        "/api/action",
        &[json, ("X-Bsjobs-Csrf", &token)],
        &kick,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn read_only_refuses_every_action() {
    let server = Beanstalkd::start();
    let id = put_buried(&server.addr(), "t", 1, b"{\"args\":{}}")
        .await
        .unwrap();
    let dash = Dashboard::new(Admin::from_url(&server.url()).unwrap()).read_only(true);
    let addr = serve(dash.router()).await;
    let page = http(addr, "GET", "/", &[], "").await;
    assert!(page
        .body
        .contains("name=\"bsjobs-read-only\" content=\"true\""));
    let token = csrf_of(&page.body);
    for action in [
        format!(r#"{{"action":"kick","job":{{"server":0,"id":{id}}}}}"#),
        format!(r#"{{"action":"delete","job":{{"server":0,"id":{id}}}}}"#),
        r#"{"action":"delete_all","tube":"t"}"#.to_owned(),
        r#"{"action":"pause","tube":"t","seconds":60}"#.to_owned(),
    ] {
        let r = http(
            addr,
            "POST",
            "/api/action",
            &[
                ("Content-Type", "application/json"),
                ("X-Bsjobs-Csrf", &token),
            ],
            &action,
        )
        .await;
        assert_eq!(r.status, 403, "{action}");
    }
    let c = bsjobs_core::Client::new(&server.url()).unwrap();
    let t = c.stats_tube(0, "t").await.unwrap();
    assert_eq!((t.current_jobs_buried, t.pause), (1, 0));
    // Reading still works.
    let r = http(addr, "GET", "/api/jobs?tube=t&state=buried", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&format!("\"id\":{id}")), "{}", r.body);
}

#[tokio::test]
async fn token_and_basic_auth_guard_every_route() {
    let server = Beanstalkd::start();
    let admin = Admin::from_url(&server.url()).unwrap();
    let dash = Dashboard::new(admin.clone()).auth(Some(Auth::Token("s3cret".into())));
    // Beyond loopback only with auth.
    assert!(
        bsjobs_web::bind("0.0.0.0:0".parse().unwrap(), &Dashboard::new(admin.clone()))
            .await
            .is_err()
    );
    drop(
        bsjobs_web::bind("0.0.0.0:0".parse().unwrap(), &dash)
            .await
            .unwrap(),
    );

    let addr = serve(dash.router()).await;
    for path in ["/", "/assets/app.js", "/api/overview"] {
        assert_eq!(http(addr, "GET", path, &[], "").await.status, 401, "{path}");
    }
    let r = http(
        addr,
        "GET",
        "/api/overview",
        &[("Authorization", "Bearer s3cret")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        http(addr, "GET", "/", &[("Authorization", "Bearer nope")], "")
            .await
            .status,
        401
    );
    let r = http(addr, "GET", "/?token=s3cret", &[], "").await;
    assert_eq!(r.status, 200);
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(
        http(addr, "GET", "/api/overview", &[("Cookie", pair)], "")
            .await
            .status,
        200
    );

    let basic = Dashboard::new(admin).auth(Some(Auth::Basic {
        user: "ops".into(),
        password: "pw".into(),
    }));
    let addr = serve(basic.router()).await;
    let r = http(addr, "GET", "/", &[], "").await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    // base64("ops:pw") and base64("ops:px")
    assert_eq!(
        http(addr, "GET", "/", &[("Authorization", "Basic b3BzOnB3")], "")
            .await
            .status,
        200
    );
    assert_eq!(
        http(addr, "GET", "/", &[("Authorization", "Basic b3BzOnB4")], "")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn mounted_under_a_path_with_every_asset_embedded() {
    let server = Beanstalkd::start();
    let dash = Dashboard::new(Admin::from_url(&server.url()).unwrap());
    let app = axum::Router::new().nest("/ops/jobs", dash.router());
    let addr = serve(app).await;
    let page = http(addr, "GET", "/ops/jobs", &[], "").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("src=\"/ops/jobs/assets/app.js\""),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("name=\"bsjobs-base\" content=\"/ops/jobs\""));
    // Nothing is loaded from elsewhere.
    assert!(!page.body.contains("http://") && !page.body.contains("https://"));
    let js = http(addr, "GET", "/ops/jobs/assets/app.js", &[], "").await;
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(
        !js.body.contains("innerHTML"),
        "job data is never written as markup"
    );
    let css = http(addr, "GET", "/ops/jobs/assets/app.css", &[], "").await;
    assert_eq!(css.status, 200);
    let o = http(addr, "GET", "/ops/jobs/api/overview", &[], "").await;
    assert_eq!(o.status, 200);
    assert!(o.body.contains("\"name\":\"default\""), "{}", o.body);
    let r = http(addr, "GET", "/ops/jobs/api/jobs?tube=x&state=lost", &[], "").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("unknown state"), "{}", r.body);
}

#[tokio::test]
async fn without_auth_only_loopback_host_names_are_answered() {
    let server = Beanstalkd::start();
    let admin = Admin::from_url(&server.url()).unwrap();
    let addr = serve(Dashboard::new(admin.clone()).router()).await;
    let port = addr.port();
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            http(addr, "GET", "/", &[("Host", &host)], "").await.status,
            200,
            "{host}"
        );
    }
    // A name re-pointed at 127.0.0.1 by its owner (DNS rebinding).
    let r = http(addr, "GET", "/", &[("Host", "evil.example")], "").await;
    assert_eq!(r.status, 421, "{}", r.body);
    assert!(
        !r.body.contains("bsjobs-csrf"),
        "the page and its token are not served"
    );

    let named = Dashboard::new(admin.clone()).allow_hosts(["jobs.example.com"]);
    let addr = serve(named.router()).await;
    assert_eq!(
        http(addr, "GET", "/", &[("Host", "jobs.example.com")], "")
            .await
            .status,
        200
    );
    assert_eq!(
        http(addr, "GET", "/", &[("Host", "evil.example")], "")
            .await
            .status,
        421
    );

    let authed = Dashboard::new(admin).auth(Some(Auth::Token("t".into())));
    let addr = serve(authed.router()).await;
    let r = http(
        addr,
        "GET",
        "/",
        &[("Host", "jobs.example.com"), ("Authorization", "Bearer t")],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "with auth, any name");
}
