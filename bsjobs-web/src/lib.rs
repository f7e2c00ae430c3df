//! A web dashboard for bsjobs queues: an axum [`Router`] to mount in an
//! application, also served by `bsjobs web`.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use bsjobs_core::admin::Admin;
//! let admin = Admin::from_url("beanstalk://127.0.0.1:11300")?;
//! let dashboard = bsjobs_web::Dashboard::new(admin).read_only(true);
//! // Mount it in an application…
//! let app: axum::Router = axum::Router::new().nest("/jobs", dashboard.router());
//! // …or serve it alone (loopback, or with auth).
//! let listener = bsjobs_web::bind("127.0.0.1:8080".parse()?, &dashboard).await?;
//! bsjobs_web::serve(listener, dashboard, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! **What it shows**: servers and tubes with their counts and throughput
//! over the last minutes, the jobs of a tube decoded (arguments, attempt,
//! error of a buried job), repeating chains; it refreshes by itself.
//!
//! **Safe by default**:
//! - every asset is compiled in; the page loads nothing from elsewhere, and
//!   its Content-Security-Policy only lets it run its own script;
//! - [`bind`] refuses an address beyond loopback unless [`Auth`] is set;
//!   without `Auth` only loopback `Host` names are answered (no DNS
//!   rebinding), unless [`Dashboard::allow_hosts`] says otherwise;
//! - actions are `POST`s that must carry the per-process token the page
//!   holds (`X-Bsjobs-Csrf`), and are refused when `Origin` names another
//!   site or `Sec-Fetch-Site` says `cross-site`;
//! - [`Dashboard::read_only`] refuses every action;
//! - the page writes job data with `textContent` only: an argument
//!   `<script>…` is shown as that text and runs nothing.
#![warn(missing_docs, unreachable_pub)]

mod api;
mod guard;
mod history;

use axum::Router;
use bsjobs_core::admin::Admin;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// How clients must authenticate.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`; a browser may open `/?token=<token>`
    /// once, which sets an HTTP-only cookie.
    Token(String),
    /// HTTP basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Auth::Token(..)"),
            Auth::Basic { user, .. } => write!(f, "Auth::Basic {{ user: {user:?}, .. }}"),
        }
    }
}

/// Which `Host` names the dashboard answers to.
#[derive(Debug, Clone)]
pub(crate) enum Hosts {
    /// Without auth: loopback names only; with auth: any.
    Default,
    /// Any host name.
    Any,
    /// These names (and no others).
    Listed(Vec<String>),
}

/// Errors of [`bind`] and [`serve`].
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The configuration would expose the dashboard unsafely.
    #[error("{0}")]
    Unsafe(String),
    /// Listening or serving failed.
    #[error("dashboard: {0}")]
    Io(#[from] std::io::Error),
}

/// The dashboard: its settings and state. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) admin: Admin,
    pub(crate) read_only: bool,
    pub(crate) auth: Option<Auth>,
    /// Per-process token every action must carry.
    pub(crate) csrf: String,
    pub(crate) history: history::History,
    /// Whether the background sampler runs.
    pub(crate) sampling: std::sync::atomic::AtomicBool,
    pub(crate) hosts: Hosts,
    /// The last chain listing and when it was made.
    pub(crate) chains:
        tokio::sync::Mutex<Option<(std::time::Instant, bsjobs_core::admin::ChainList)>>,
}

impl Dashboard {
    /// A dashboard over `admin`'s servers: actions allowed, no authentication.
    pub fn new(admin: Admin) -> Self {
        Dashboard {
            inner: Arc::new(Inner {
                admin,
                read_only: false,
                auth: None,
                csrf: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
                history: history::History::default(),
                sampling: Default::default(),
                hosts: Hosts::Default,
                chains: Default::default(),
            }),
        }
    }

    fn edit(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|a| Inner {
            admin: a.admin.clone(),
            read_only: a.read_only,
            auth: a.auth.clone(),
            csrf: a.csrf.clone(),
            history: history::History::default(),
            sampling: Default::default(),
            hosts: a.hosts.clone(),
            chains: Default::default(),
        });
        f(&mut inner);
        Dashboard {
            inner: Arc::new(inner),
        }
    }

    /// Shows, never acts: every action is refused with 403.
    pub fn read_only(self, yes: bool) -> Self {
        self.edit(|i| i.read_only = yes)
    }

    /// Requires authentication (`None`: none).
    pub fn auth(self, auth: Option<Auth>) -> Self {
        self.edit(|i| i.auth = auth)
    }

    /// The `Host` names to answer to (without a port), for a dashboard
    /// mounted behind an application's own name. By default a dashboard
    /// without [`Auth`] answers to loopback names only (`localhost`,
    /// `127.0.0.1`, `[::1]`), which defeats DNS rebinding; with `Auth`, to
    /// any. An empty list means any host.
    pub fn allow_hosts<I: IntoIterator<Item = S>, S: Into<String>>(self, hosts: I) -> Self {
        let list: Vec<String> = hosts.into_iter().map(Into::into).collect();
        self.edit(|i| {
            i.hosts = if list.is_empty() {
                Hosts::Any
            } else {
                Hosts::Listed(list)
            }
        })
    }

    /// The routes, to serve or to `nest` under a path of an application.
    ///
    /// Inside a tokio runtime this also starts a task that samples the
    /// counters every 5 s for the throughput graphs; it ends when the last
    /// router is dropped.
    pub fn router(&self) -> Router {
        history::start_sampler(&self.inner);
        api::routes(self.inner.clone())
    }
}

/// Binds `addr`, refusing an address beyond loopback unless the dashboard
/// requires authentication.
pub async fn bind(addr: SocketAddr, dash: &Dashboard) -> Result<tokio::net::TcpListener, WebError> {
    if !addr.ip().is_loopback() && dash.inner.auth.is_none() {
        return Err(WebError::Unsafe(format!(
            "refusing to serve the dashboard on {addr} without authentication: \
             anyone who can reach it could delete jobs. Add --token or --basic \
             (or listen on 127.0.0.1)"
        )));
    }
    Ok(tokio::net::TcpListener::bind(addr).await?)
}

/// Serves the dashboard on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    dash: Dashboard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    axum::serve(listener, dash.router())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
