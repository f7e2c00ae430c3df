//! A headless Chromium driven over the Chrome DevTools Protocol: just what
//! the dashboard test needs (navigate, evaluate, click, screenshot).

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running browser with one page attached.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    ws: Ws,
    session: String,
    next: u64,
}

/// The Chromium binary: `BSJOBS_CHROMIUM`, else the first on PATH.
fn binary() -> String {
    if let Ok(b) = std::env::var("BSJOBS_CHROMIUM") {
        return b;
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name.to_owned();
        }
    }
    panic!(
        "no Chromium found: install it with `bash scripts/ensure-chromium.sh` \
         (Debian package chromium) or set BSJOBS_CHROMIUM"
    );
}

impl Browser {
    /// Starts headless Chromium with a fresh profile and opens a blank page
    /// of `width`×`height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "bsjobs-chromium-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let mut cmd = Command::new(binary());
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // Die with the test even if it is killed before Drop runs.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("start chromium");
        // Chromium prints the DevTools address on stderr; keep draining it
        // afterwards so that it never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.trim().to_owned());
                    }
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium did not print its DevTools address within 30 s");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to DevTools");
        let mut b = Browser {
            child,
            profile,
            ws,
            session: String::new(),
            next: 0,
        };
        let target = b
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = b
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        b.page(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
        b
    }

    /// Sends a command (to the page's session when `session` is given) and
    /// waits for its result; events meanwhile are skipped.
    async fn call(&mut self, session: Option<String>, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("send to DevTools");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer within 30 s"))
                .expect("DevTools closed")
                .expect("DevTools read");
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    async fn page(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.call(Some(s), method, params).await
    }

    /// Opens `url`.
    pub async fn goto(&mut self, url: &str) {
        self.page("Page.navigate", json!({ "url": url })).await;
    }

    /// Evaluates `js` in the page and returns its value.
    pub async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .page(
                "Runtime.evaluate",
                json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluates `js` every 100 ms until it is `true`; panics after `limit`
    /// with `what`.
    pub async fn wait_for(&mut self, js: &str, limit: Duration, what: &str) {
        let end = Instant::now() + limit;
        loop {
            if self.eval(js).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > end {
                let body = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await;
                panic!("{what}: not seen within {limit:?}; page text:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses and releases the left mouse button over the centre of the
    /// element `selector` picks, as a user's click.
    pub async fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let rect = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()"
            ))
            .await;
        assert!(!rect.is_null(), "nothing matches {selector}");
        let (x, y) = (rect["x"].as_f64().unwrap(), rect["y"].as_f64().unwrap());
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.page(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        let r = self
            .page("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
