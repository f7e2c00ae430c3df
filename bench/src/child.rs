//! What the bench's child processes run: this same binary started with
//! `--worker-only`, `--enqueue-only` or `--raw-recv-only`. Each prints
//! `READY`, its results as `KEY k=v …` lines, and `BYE` when it is done.

use crate::jobs;
use crate::proc::{proc_status_kb, self_cpu_s};
use crate::raw::{
    noop_body, quantiles, raw, raw_drain, raw_put, raw_use, receive_timestamps, NOOP,
};
use crate::{arg, arg_u64};
use bsjobs::proto::{Command, Response};
use bsjobs::{Client, ClientConfig, Shutdown, Worker};
use std::io::BufRead as _;
use std::time::{Duration, Instant};
use tracing::Instrument as _;

/// `--worker-only --url U --tubes a,b [--concurrency N|default] [--expect N] [--skip K] [--grace-ms G] [--hook]`
///
/// Prints `READY`, then (with `--expect`) `DONE …` once that many counting
/// jobs (noop and the lifecycle jobs) ran and the first tube has none
/// ready, reserved or delayed; stops on `stop` or EOF on stdin, then prints
/// the latencies it recorded (the first `K` of each series skipped as
/// warm-up), the chain runs it made, what the `--hook` ([`jobs::CountHook`])
/// saw, and `BYE`.
pub(crate) async fn worker(args: &[String]) {
    let url = arg(args, "--url").expect("--url").to_owned();
    let tubes: Vec<String> = arg(args, "--tubes")
        .expect("--tubes")
        .split(',')
        .map(str::to_owned)
        .collect();
    let expect = arg_u64(args, "--expect").unwrap_or(0);
    let skip = arg_u64(args, "--skip").unwrap_or(0) as usize;
    let stop_rx = stdin_stop();

    let sd = Shutdown::new();
    let mut w = Worker::from_url(&url)
        .expect("worker url")
        .tubes(tubes.clone())
        .shutdown(sd.clone());
    if let Some(c) = arg(args, "--concurrency").filter(|c| *c != "default") {
        w = w.concurrency(c.parse().expect("--concurrency"));
    }
    if let Some(ms) = arg_u64(args, "--grace-ms") {
        w = w.grace(Duration::from_millis(ms));
    }
    if args.iter().any(|a| a == "--hook") {
        w = w.hook(jobs::CountHook);
    }
    // `BSJOBS_METRICS_ADDR=127.0.0.1:0 bench --only drain` measures the
    // worker with its metrics on (an ephemeral port per worker child).
    if let Ok(addr) = std::env::var("BSJOBS_METRICS_ADDR") {
        w = w.metrics(addr.parse().expect("BSJOBS_METRICS_ADDR is host:port"));
    }
    let done_rx = (expect > 0).then(|| jobs::noop_signal(expect));
    let rss0 = proc_status_kb("self", "VmRSS");
    let t0 = Instant::now();
    let run = tokio::spawn(w.run());
    println!("READY rss_kb={rss0}");

    if let Some(done_rx) = done_rx {
        let at = done_rx.await.expect("handler signal");
        let handlers_s = at.duration_since(t0).as_secs_f64();
        // The tube is empty once the last deletes are in (a burial's
        // delayed copy buried): poll for it.
        let c = Client::new(&url).expect("client");
        loop {
            let st = c.stats_tube(0, &tubes[0]).await.expect("stats-tube");
            if st.current_jobs_ready + st.current_jobs_reserved + st.current_jobs_delayed == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let empty_s = t0.elapsed().as_secs_f64();
        println!(
            "DONE handlers_s={handlers_s:.6} empty_s={empty_s:.6} rss_kb={} hwm_kb={}",
            proc_status_kb("self", "VmRSS"),
            proc_status_kb("self", "VmHWM")
        );
    }
    let _ = stop_rx.await;
    sd.trigger();
    match tokio::time::timeout(Duration::from_secs(35), run).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("worker child: worker failed: {e}"),
        Ok(Err(e)) => eprintln!("worker child: worker task failed: {e}"),
        Err(_) => eprintln!("worker child: worker did not stop within 35 s"),
    }
    for (name, v) in jobs::series() {
        // BENCH_DUMP=prefix writes every sample: "sent_ns latency_ns".
        if let Ok(prefix) = std::env::var("BENCH_DUMP") {
            let text: String = v.iter().map(|(s, l)| format!("{s} {l}\n")).collect();
            let _ = std::fs::write(format!("{prefix}.{name}"), text);
        }
        let skip = skip.min(v.len());
        print_series(name, v[skip..].iter().map(|(_, l)| *l).collect());
    }
    println!("CHAINS runs={}", jobs::chain_runs());
    println!("{}", jobs::hook_line());
    println!("BYE");
}

/// `NAME n=… p50_ns=… p90_ns=… p99_ns=… max_ns=…`
fn print_series(name: &str, v: Vec<u64>) {
    let n = v.len();
    let [p50, p90, p99, max] = quantiles(v);
    println!("{name} n={n} p50_ns={p50} p90_ns={p90} p99_ns={p99} max_ns={max}");
}

/// `--raw-recv-only --addr A --tube T --n N [--skip K] [--series NAME]`: the
/// raw latency reference in a child process of its own, as the worker is
/// (`raw::receive_timestamps`). Prints `READY` once it is blocked in
/// `reserve`, then the series of the last `N - K` samples and `BYE`.
pub(crate) async fn raw_receiver(args: &[String]) {
    let addr = arg(args, "--addr").expect("--addr").to_owned();
    let tube = arg(args, "--tube").expect("--tube").to_owned();
    let n = arg_u64(args, "--n").expect("--n") as usize;
    let skip = (arg_u64(args, "--skip").unwrap_or(0) as usize).min(n);
    let name = arg(args, "--series").unwrap_or("LAT").to_owned();
    let lats = receive_timestamps(&addr, &tube, n, || println!("READY")).await;
    print_series(&name, lats[skip..].to_vec());
    println!("BYE");
}

/// Resolves when stdin says `stop` or closes.
fn stdin_stop() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) if l.trim() == "stop" => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    rx
}

/// `--enqueue-only --url U --mode one|conc|bulk|raw --jobs N [--tasks T] [--job noop|ctx|unique|fail] [--hook]`:
/// enqueues N jobs (noop unless `--job` names another; plus one warm-up job,
/// before the clock starts) with the generated API and the process-wide
/// client (`raw`: with sequential raw puts of the noop body on one
/// connection to the URL's first server, the control for `one` measured in
/// the same kind of process), with [`jobs::TagHook`] on the client if
/// `--hook`; prints `RESULT secs=… cpu_s=… existing=…` (`existing`: the
/// enqueues, warm-up included, that found a unique job already there).
pub(crate) async fn enqueue(args: &[String]) {
    let url = arg(args, "--url").expect("--url");
    let mode = arg(args, "--mode").expect("--mode").to_owned();
    let n = arg_u64(args, "--jobs").expect("--jobs");
    let tasks = arg_u64(args, "--tasks").unwrap_or(64);
    let job = jobs::job_by_name(arg(args, "--job").unwrap_or("noop"));
    let client = Client::new(url).expect("client");
    if args.iter().any(|a| a == "--hook") {
        client.add_hook(jobs::TagHook);
    }
    assert!(Client::set_global(client));
    let existing = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = |h: bsjobs::JobHandle, existing: &std::sync::atomic::AtomicU64| {
        if h.existing {
            existing.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    };
    // Connect (and `use` the tube) before the clock starts.
    count(
        job(u64::MAX).enqueue().await.expect("warm-up enqueue"),
        &existing,
    );
    // The control's connection, also ready before the clock starts.
    let mut conn = if mode == "raw" {
        let addr = ClientConfig::from_url(url).expect("url").servers[0].clone();
        let mut c = raw(&addr).await;
        raw_use(&mut c, NOOP).await;
        Some(c)
    } else {
        None
    };
    let mut body = Vec::with_capacity(64);
    // Under `BENCH_OTEL=1` every enqueue happens inside a span (without a
    // subscriber the span is disabled and costs next to nothing).
    let span = tracing::info_span!("producer");
    let counted = existing.clone();
    let t0 = Instant::now();
    async move {
        let existing = counted;
        match mode.as_str() {
            "one" => {
                for i in 0..n {
                    count(job(i).enqueue().await.expect("enqueue"), &existing);
                }
            }
            "raw" => {
                let conn = conn.as_mut().expect("raw connection");
                for i in 0..n {
                    noop_body(&mut body, i);
                    let put = Command::Put {
                        pri: 1024,
                        delay: 0,
                        ttr: 60,
                        body: &body,
                    };
                    match conn.request(&put).await.expect("put") {
                        Response::Inserted(_) => {}
                        r => panic!("put: {r:?}"),
                    }
                }
            }
            "conc" => {
                let mut set = tokio::task::JoinSet::new();
                for t in 0..tasks {
                    let existing = existing.clone();
                    set.spawn(
                        async move {
                            let mut i = t;
                            while i < n {
                                count(job(i).enqueue().await.expect("enqueue"), &existing);
                                i += tasks;
                            }
                        }
                        .instrument(tracing::Span::current()),
                    );
                }
                while let Some(r) = set.join_next().await {
                    r.expect("producer task");
                }
            }
            "bulk" => {
                let client = Client::global().expect("global client");
                let out = client.enqueue_many((0..n).map(job)).await;
                assert_eq!(out.len() as u64, n);
                for r in out {
                    count(r.expect("bulk enqueue"), &existing);
                }
            }
            m => panic!("unknown --mode {m}"),
        }
    }
    .instrument(span)
    .await;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "RESULT secs={secs:.6} cpu_s={:.6} existing={}",
        self_cpu_s(),
        existing.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// For profiling a worker by hand: `--prefill-only --addr 127.0.0.1:P --jobs N`.
pub(crate) async fn prefill(args: &[String]) {
    let addr = arg(args, "--addr").expect("--addr").to_owned();
    let n = arg_u64(args, "--jobs").expect("--jobs");
    let (k, s) = raw_put(&addr, NOOP, n, None).await;
    println!("prefilled {k} jobs into {NOOP} in {s:.3} s");
}

/// For profiling by hand: `--raw-drain-only --addr 127.0.0.1:P --depth D --window W`.
pub(crate) async fn raw_drain_only(args: &[String]) {
    let addr = arg(args, "--addr").expect("--addr").to_owned();
    let depth = arg_u64(args, "--depth").unwrap_or(2) as usize;
    let window = arg_u64(args, "--window").unwrap_or(250) as usize;
    let (k, s) = raw_drain(&addr, NOOP, (depth, window), None).await;
    println!("drained {k} jobs in {s:.3} s: {:.0} jobs/s", k as f64 / s);
}
