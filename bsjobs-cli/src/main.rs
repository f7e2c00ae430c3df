//! `bsjobs`: look at and act on bsjobs queues in beanstalkd.
//!
//! Every command is a thin face over `bsjobs_core::admin::Admin`. Exit
//! codes (see [`Failure`]): 0 done, 1 not found, 2 bad usage or input,
//! 3 beanstalkd unreachable, 4 beanstalkd refused or failed.
#![warn(missing_docs, unreachable_pub)]

mod cli;
mod output;
mod top;

use bsjobs_core::admin::{Admin, JobQuery, JobRef};
use bsjobs_core::Error;
use clap::{CommandFactory as _, Parser as _};
use cli::{Args, Cmd};
use output::Out;
use std::process::ExitCode;

/// Why a command failed, and the exit code scripts see.
#[derive(Debug)]
pub(crate) enum Failure {
    /// 1: a job, tube or chain that was named does not exist.
    NotFound(String),
    /// 2: the command line or a value in it is wrong.
    Usage(String),
    /// 3: no beanstalkd answered.
    Unreachable(String),
    /// 4: beanstalkd answered with an error, or something else failed.
    Server(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::NotFound(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
            Failure::Server(_) => 4,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::NotFound(m)
            | Failure::Usage(m)
            | Failure::Unreachable(m)
            | Failure::Server(m) => m,
        }
    }

    /// Maps a library error, naming `what` (a job or tube) for `NotFound`.
    pub(crate) fn from_error(e: Error, url: &str, what: &str) -> Failure {
        match e {
            Error::NotFound => Failure::NotFound(format!("{what} not found")),
            Error::BadUrl { .. } | Error::BadTube { .. } | Error::BadJobRef { .. } => {
                Failure::Usage(e.to_string())
            }
            Error::Connect { addr, source } => {
                let why = match source.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                    std::io::ErrorKind::TimedOut => "no answer in time".to_owned(),
                    _ => source.to_string(),
                };
                Failure::Unreachable(format!(
                    "cannot reach beanstalk://{addr}: {why} — is beanstalkd running? \
                     (the URL comes from --url or BSJOBS_URL; now {url})"
                ))
            }
            Error::Io(err) => Failure::Unreachable(format!(
                "beanstalkd at {url} stopped answering: {err} — is it overloaded or restarting?"
            )),
            Error::Closed => Failure::Unreachable(format!(
                "beanstalkd at {url} closed the connection — was it restarted?"
            )),
            e => Failure::Server(format!("{e}")),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let out = Out::new(args.json, args.color);
    if let Cmd::Completions { shell } = args.cmd {
        clap_complete::generate(
            shell,
            &mut Args::command(),
            "bsjobs",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bsjobs: cannot start the runtime: {e}");
            return ExitCode::from(4);
        }
    };
    match rt.block_on(run(args, &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("bsjobs: {}", f.message());
            ExitCode::from(f.code())
        }
    }
}

async fn run(args: Args, out: &Out) -> Result<(), Failure> {
    let url = args.url.clone();
    let admin = Admin::from_url(&url).map_err(|e| Failure::from_error(e, &url, "server"))?;
    let err = |what: &str| {
        let (url, what) = (url.clone(), what.to_owned());
        move |e: Error| Failure::from_error(e, &url, &what)
    };
    match args.cmd {
        Cmd::Tubes { all } => {
            let o = admin.overview(all).await.map_err(err("tube"))?;
            if let Some(s) = o.unreachable() {
                // Ask again for the typed error, to say what to do about it.
                let e = admin.client().stats(s.index).await.err();
                return Err(match e {
                    Some(e) => Failure::from_error(e, &url, "server"),
                    None => Failure::Unreachable(format!(
                        "beanstalk://{} did not answer: {}",
                        s.addr,
                        s.error.clone().unwrap_or_default()
                    )),
                });
            }
            out.tubes(&o.tubes);
        }
        Cmd::Jobs {
            tube,
            state,
            limit,
            after,
            budget,
        } => {
            let after = match after {
                Some(a) => Some(admin.resolve_cursor(&a).map_err(err("job"))?),
                None => None,
            };
            let mut q = JobQuery::new(&tube)
                .limit(limit)
                .after(after)
                .budget(budget);
            q.state = state.map(Into::into);
            let page = admin.jobs(&q).await.map_err(err("tube"))?;
            out.jobs(&admin, &page);
        }
        Cmd::Show { job } => {
            let r = admin
                .resolve(&job)
                .await
                .map_err(err(&format!("job {job}")))?;
            match admin.job(r).await.map_err(err(&format!("job {job}")))? {
                Some(j) => out.job(&admin, &j),
                None => return Err(Failure::NotFound(format!("job {job} not found"))),
            }
        }
        Cmd::Kick { tube, all, jobs } => {
            if all {
                let n = admin.kick_buried(&tube).await.map_err(err(&tube))?;
                out.done(
                    &format!("kicked {n} buried job(s) of {tube}"),
                    serde_json::json!({ "kicked": n }),
                );
            } else {
                let refs = in_tube(&admin, &tube, &jobs, &url).await?;
                let mut missing = Vec::new();
                let mut kicked = Vec::new();
                for (text, r) in refs {
                    match admin.kick_job(r).await {
                        Ok(()) => kicked.push(admin.label(r)),
                        Err(Error::NotFound) => missing.push(text),
                        Err(e) => return Err(Failure::from_error(e, &url, "job")),
                    }
                }
                finish(out, "kicked", kicked, missing)?;
            }
        }
        Cmd::Delete { tube, all, jobs } => {
            if all {
                let n = admin.delete_buried(&tube).await.map_err(err(&tube))?;
                out.done(
                    &format!("deleted {n} buried job(s) of {tube}"),
                    serde_json::json!({ "deleted": n }),
                );
            } else {
                let refs = in_tube(&admin, &tube, &jobs, &url).await?;
                let mut missing = Vec::new();
                let mut deleted = Vec::new();
                for (text, r) in refs {
                    match admin.delete_job(r).await {
                        Ok(()) => deleted.push(admin.label(r)),
                        Err(Error::NotFound) => missing.push(text),
                        Err(e) => return Err(Failure::from_error(e, &url, "job")),
                    }
                }
                finish(out, "deleted", deleted, missing)?;
            }
        }
        Cmd::Cancel { job, chain } => {
            let c = match (job, chain) {
                (Some(job), None) => {
                    let r = admin
                        .resolve(&job)
                        .await
                        .map_err(err(&format!("job {job}")))?;
                    admin.cancel(r).await.map_err(err(&format!("job {job}")))?
                }
                (None, Some(chain)) => admin
                    .cancel_chain(&chain)
                    .await
                    .map_err(err(&format!("chain {chain} (or its current job)")))?,
                _ => return Err(Failure::Usage("name a job, or a chain with --chain".into())),
            };
            let what = match &c.chain {
                Some(ch) if c.deleted => {
                    format!("cancelled chain {ch}: job {} deleted", admin.label(c.job))
                }
                Some(ch) => format!("cancelled chain {ch}: it ends after its current run"),
                None if c.deleted => format!("deleted job {}", admin.label(c.job)),
                None => format!("job {} is running; it was not deleted", admin.label(c.job)),
            };
            out.done(&what, serde_json::to_value(&c).unwrap_or_default());
        }
        Cmd::Chains { budget } => {
            let list = admin.chains(budget).await.map_err(err("chain"))?;
            out.chains(&admin, &list);
        }
        Cmd::Pause { tube, duration } => {
            let d = cli::parse_duration(&duration).map_err(Failure::Usage)?;
            let n = admin
                .pause(&tube, d)
                .await
                .map_err(err(&format!("tube {tube}")))?;
            out.done(
                &format!("paused {tube} for {}s on {n} server(s)", d.as_secs()),
                serde_json::json!({ "tube": tube, "seconds": d.as_secs(), "servers": n }),
            );
        }
        Cmd::Resume { tube } => {
            let n = admin
                .resume(&tube)
                .await
                .map_err(err(&format!("tube {tube}")))?;
            out.done(
                &format!("resumed {tube} on {n} server(s)"),
                serde_json::json!({ "tube": tube, "servers": n }),
            );
        }
        Cmd::Top {
            interval,
            iterations,
            once,
            all,
        } => {
            let every = cli::parse_duration(&interval).map_err(Failure::Usage)?;
            let n = if once { Some(1) } else { iterations };
            top::run(&admin, out, every, n, all, &url).await?;
        }
        Cmd::Web(w) => web(admin, w, &url).await?,
        Cmd::Completions { .. } => unreachable!("handled before the runtime starts"),
    }
    Ok(())
}

/// Resolves job references and checks that each is in `tube`: acting on a
/// job of another tube by a typo is refused.
async fn in_tube(
    admin: &Admin,
    tube: &str,
    jobs: &[String],
    url: &str,
) -> Result<Vec<(String, JobRef)>, Failure> {
    if jobs.is_empty() {
        return Err(Failure::Usage(
            "name job ids, or --all for every buried job".into(),
        ));
    }
    let mut out = Vec::new();
    for text in jobs {
        let r = admin
            .resolve(text)
            .await
            .map_err(|e| Failure::from_error(e, url, &format!("job {text}")))?;
        match admin
            .job(r)
            .await
            .map_err(|e| Failure::from_error(e, url, "job"))?
        {
            Some(j) if j.tube != tube => {
                return Err(Failure::Usage(format!(
                    "job {text} is in tube {}, not {tube}: nothing was done",
                    j.tube
                )))
            }
            _ => out.push((text.clone(), r)),
        }
    }
    Ok(out)
}

fn finish(out: &Out, verb: &str, done: Vec<String>, missing: Vec<String>) -> Result<(), Failure> {
    out.done(
        &format!(
            "{verb} {}",
            if done.is_empty() {
                "nothing".into()
            } else {
                done.join(" ")
            }
        ),
        serde_json::json!({ verb: done, "missing": missing }),
    );
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::NotFound(format!(
            "not found (nothing done for them): {}",
            missing.join(" ")
        )))
    }
}

async fn web(admin: Admin, w: cli::WebArgs, url: &str) -> Result<(), Failure> {
    let auth = match (&w.token, &w.basic) {
        (Some(t), None) => Some(bsjobs_web::Auth::Token(t.clone())),
        (None, Some(b)) => {
            let (user, pass) = b
                .split_once(':')
                .ok_or_else(|| Failure::Usage("--basic takes USER:PASSWORD".into()))?;
            Some(bsjobs_web::Auth::Basic {
                user: user.to_owned(),
                password: pass.to_owned(),
            })
        }
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(Failure::Usage(
                "--token and --basic exclude each other".into(),
            ))
        }
    };
    let client = admin.client().clone();
    let dash = bsjobs_web::Dashboard::new(admin)
        .read_only(w.read_only)
        .auth(auth);
    let listener = bsjobs_web::bind(w.listen, &dash)
        .await
        .map_err(|e| match e {
            bsjobs_web::WebError::Unsafe(m) => Failure::Usage(m),
            e => Failure::Server(e.to_string()),
        })?;
    // Fail early, with the usual message, when no server answers.
    client
        .stats(0)
        .await
        .map_err(|e| Failure::from_error(e, url, "server"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Server(e.to_string()))?;
    eprintln!("bsjobs: dashboard on http://{addr}/ (Ctrl-C stops it)");
    bsjobs_web::serve(listener, dash, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| Failure::Server(e.to_string()))
}
