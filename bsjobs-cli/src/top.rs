//! `bsjobs top`: tubes and rates, refreshed until Ctrl-C or `--iterations`.

use crate::output::{human_secs, Out};
use crate::Failure;
use bsjobs_core::admin::{Admin, TubeInfo};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// tube → (puts, deletes) at one refresh.
type Counters = HashMap<String, (u64, u64)>;

/// One refresh as printed with `--json` (one line per refresh).
#[derive(serde::Serialize)]
struct Frame<'a> {
    servers: &'a [bsjobs_core::admin::ServerInfo],
    tubes: Vec<TubeRate<'a>>,
}

#[derive(serde::Serialize)]
struct TubeRate<'a> {
    #[serde(flatten)]
    tube: &'a TubeInfo,
    /// Jobs put per second since the last refresh (null on the first).
    put_per_sec: Option<f64>,
    /// Deletes per second since the last refresh (null on the first).
    delete_per_sec: Option<f64>,
}

pub(crate) async fn run(
    admin: &Admin,
    out: &Out,
    every: Duration,
    iterations: Option<u64>,
    internal: bool,
    url: &str,
) -> Result<(), Failure> {
    let every = every.max(Duration::from_millis(200));
    let mut last: Option<(Instant, Counters)> = None;
    let mut done = 0u64;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let o = admin
            .overview(internal)
            .await
            .map_err(|e| Failure::from_error(e, url, "server"))?;
        let now = Instant::now();
        let rates: Vec<Option<(f64, f64)>> = o
            .tubes
            .iter()
            .map(|t| {
                let (at, prev) = last.as_ref()?;
                let (puts, deletes) = prev
                    .get(&t.name)
                    .copied()
                    .unwrap_or((t.total_jobs, t.deletes));
                let secs = now.duration_since(*at).as_secs_f64().max(1e-3);
                Some((
                    t.total_jobs.saturating_sub(puts) as f64 / secs,
                    t.deletes.saturating_sub(deletes) as f64 / secs,
                ))
            })
            .collect();
        if out.is_json() {
            out.json_line(&Frame {
                servers: &o.servers,
                tubes: o
                    .tubes
                    .iter()
                    .zip(&rates)
                    .map(|(tube, r)| TubeRate {
                        tube,
                        put_per_sec: r.map(|r| r.0),
                        delete_per_sec: r.map(|r| r.1),
                    })
                    .collect(),
            });
        } else {
            let mut s = String::new();
            if out.is_tty() {
                // Home and clear: the view replaces itself.
                s.push_str("\x1b[H\x1b[2J");
            }
            for sv in &o.servers {
                match (&sv.stats, &sv.error) {
                    (Some(st), _) => s.push_str(&format!(
                        "{}  beanstalkd {}  up {}  ready {}  reserved {}  delayed {}  buried {}  workers {}\n",
                        sv.addr,
                        st.version,
                        human_secs(st.uptime),
                        st.ready,
                        st.reserved,
                        st.delayed,
                        st.buried,
                        st.workers
                    )),
                    (None, e) => s.push_str(&format!(
                        "{}  UNREACHABLE: {}\n",
                        sv.addr,
                        e.as_deref().unwrap_or("?")
                    )),
                }
            }
            s.push('\n');
            let r: Vec<(f64, f64)> = rates.iter().map(|r| r.unwrap_or_default()).collect();
            s.push_str(&out.tubes_table(&o.tubes, Some(&r)));
            if out.is_tty() {
                s.push_str(&format!("\nevery {}s; Ctrl-C stops\n", every.as_secs_f64()));
            } else {
                s.push('\n');
            }
            print!("{s}");
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        }
        last = Some((
            now,
            o.tubes
                .iter()
                .map(|t| (t.name.clone(), (t.total_jobs, t.deletes)))
                .collect(),
        ));
        done += 1;
        if iterations.is_some_and(|n| done >= n) {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut stop => return Ok(()),
        }
    }
}
