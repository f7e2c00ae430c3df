//! Routes: the page, its two assets, a JSON API it reads, one action endpoint.

use crate::history::Rates;
use crate::{guard, Inner};
use axum::extract::{OriginalUri, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use bsjobs_core::admin::{JobQuery, JobRef, ServerInfo, TubeInfo};
use bsjobs_core::proto::stats::JobState;
use bsjobs_core::Error;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const PAGE: &str = include_str!("../assets/index.html");

/// Ids a dashboard listing looks at per server per request.
const WEB_BUDGET: u64 = 500_000;

/// Ids a chain listing looks at per server.
const CHAINS_BUDGET: u64 = 200_000;
/// How long a chain listing is reused.
const CHAINS_FRESH: Duration = Duration::from_secs(20);

type St = State<Arc<Inner>>;

pub(crate) fn routes(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/api/overview", get(overview))
        .route("/api/jobs", get(jobs))
        .route("/api/chains", get(chains))
        .route("/api/action", post(action))
        .layer(middleware::from_fn_with_state(inner.clone(), guard::guard))
        .with_state(inner)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// The page, with the path it is mounted at, the action token and the mode.
async fn index(State(inner): St, OriginalUri(original): OriginalUri, uri: Uri) -> Html<String> {
    // Nested under `/ops`, a request for `/ops/` reaches this route as `/`.
    let inner_path = uri.path().trim_end_matches('/');
    let full = original.path().trim_end_matches('/');
    let base = full.strip_suffix(inner_path).unwrap_or(full);
    Html(
        PAGE.replace("{base}", &escape(base))
            .replace("{csrf}", &escape(&inner.csrf))
            .replace(
                "{read_only}",
                if inner.read_only { "true" } else { "false" },
            ),
    )
}

/// Escapes text for an HTML attribute or element.
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// An API failure: status and message.
struct Fail(StatusCode, String);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::BadTube { .. } | Error::BadJobRef { .. } => StatusCode::BAD_REQUEST,
            Error::Connect { .. } | Error::Io(_) | Error::Closed => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let msg = match e {
            Error::NotFound => "not found (already gone?)".to_owned(),
            e => e.to_string(),
        };
        Fail(code, msg)
    }
}

#[derive(Serialize)]
struct OverviewOut {
    servers: Vec<ServerInfo>,
    tubes: Vec<TubeOut>,
    read_only: bool,
    /// Seconds of history behind the rates.
    history_secs: u64,
}

#[derive(Serialize)]
struct TubeOut {
    #[serde(flatten)]
    tube: TubeInfo,
    #[serde(flatten)]
    rates: Rates,
}

async fn overview(State(inner): St) -> Result<Json<OverviewOut>, Fail> {
    let o = inner.admin.overview(false).await?;
    inner.history.record(
        o.tubes
            .iter()
            .map(|t| (t.name.clone(), t.total_jobs, t.deletes)),
    );
    Ok(Json(OverviewOut {
        servers: o.servers,
        tubes: o
            .tubes
            .into_iter()
            .map(|t| TubeOut {
                rates: inner.history.rates(&t.name),
                tube: t,
            })
            .collect(),
        read_only: inner.read_only,
        history_secs: inner.history.span(),
    }))
}

#[derive(Deserialize)]
struct JobsIn {
    tube: String,
    state: Option<String>,
    limit: Option<usize>,
    after_server: Option<usize>,
    after_id: Option<u64>,
}

async fn jobs(State(inner): St, Query(q): Query<JobsIn>) -> Result<Response, Fail> {
    let state = match q.state.as_deref() {
        None | Some("") | Some("any") => None,
        Some("ready") => Some(JobState::Ready),
        Some("delayed") => Some(JobState::Delayed),
        Some("reserved") => Some(JobState::Reserved),
        Some("buried") => Some(JobState::Buried),
        Some(s) => {
            return Err(Fail(
                StatusCode::BAD_REQUEST,
                format!("unknown state {s:?}: ready, delayed, reserved, buried or any"),
            ))
        }
    };
    let after = match (q.after_server, q.after_id) {
        (Some(server), Some(id)) => Some(JobRef { server, id }),
        _ => None,
    };
    let mut query = JobQuery::new(&q.tube)
        .limit(q.limit.unwrap_or(50).min(500))
        .after(after)
        .budget(WEB_BUDGET);
    query.state = state;
    let page = inner.admin.jobs(&query).await?;
    Ok(Json(page).into_response())
}

async fn chains(State(inner): St) -> Result<Response, Fail> {
    // A chain listing walks ids (see `bsjobs_core::admin`): an open page
    // asks at most every CHAINS_FRESH, whatever its number of tabs.
    let mut cache = inner.chains.lock().await;
    if let Some((at, list)) = &*cache {
        if at.elapsed() < CHAINS_FRESH {
            return Ok(Json(list.clone()).into_response());
        }
    }
    let list = inner.admin.chains(CHAINS_BUDGET).await?;
    *cache = Some((std::time::Instant::now(), list.clone()));
    Ok(Json(list).into_response())
}

/// One action, as the page posts it.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Action {
    Kick { job: JobRef },
    Delete { job: JobRef },
    Cancel { job: JobRef },
    CancelChain { chain: String },
    KickAll { tube: String },
    DeleteAll { tube: String },
    Pause { tube: String, seconds: u64 },
    Resume { tube: String },
}

async fn action(State(inner): St, Json(a): Json<Action>) -> Result<Json<serde_json::Value>, Fail> {
    if inner.read_only {
        return Err(Fail(
            StatusCode::FORBIDDEN,
            "this dashboard is read-only".into(),
        ));
    }
    let admin = &inner.admin;
    let message = match a {
        Action::Kick { job } => {
            admin.kick_job(job).await?;
            format!("kicked job {}", admin.label(job))
        }
        Action::Delete { job } => {
            admin.delete_job(job).await?;
            format!("deleted job {}", admin.label(job))
        }
        Action::Cancel { job } => {
            let c = admin.cancel(job).await?;
            *inner.chains.lock().await = None;
            match c.chain {
                Some(ch) => format!("cancelled chain {ch}"),
                None if c.deleted => format!("deleted job {}", admin.label(job)),
                None => format!("job {} is running; not deleted", admin.label(job)),
            }
        }
        Action::CancelChain { chain } => {
            admin.cancel_chain(&chain).await?;
            *inner.chains.lock().await = None;
            format!("cancelled chain {chain}")
        }
        Action::KickAll { tube } => {
            let n = admin.kick_buried(&tube).await?;
            format!("kicked {n} buried job(s) of {tube}")
        }
        Action::DeleteAll { tube } => {
            let n = admin.delete_buried(&tube).await?;
            format!("deleted {n} buried job(s) of {tube}")
        }
        Action::Pause { tube, seconds } => {
            admin.pause(&tube, Duration::from_secs(seconds)).await?;
            format!("paused {tube} for {seconds}s")
        }
        Action::Resume { tube } => {
            admin.resume(&tube).await?;
            format!("resumed {tube}")
        }
    };
    Ok(Json(serde_json::json!({ "ok": true, "message": message })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
