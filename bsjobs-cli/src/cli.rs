//! The command line, declared with clap's derive.

use bsjobs_core::proto::stats::JobState;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::time::Duration;

/// Look at and act on bsjobs queues in beanstalkd.
///
/// Exit codes: 0 done; 1 a named job, tube or chain does not exist; 2 bad
/// usage or input; 3 beanstalkd cannot be reached; 4 beanstalkd refused or
/// failed.
#[derive(Debug, Parser)]
#[command(name = "bsjobs", version, propagate_version = true)]
pub(crate) struct Args {
    /// beanstalkd servers: beanstalk://host:port[,host:port…]
    #[arg(
        long,
        env = "BSJOBS_URL",
        default_value = "beanstalk://127.0.0.1:11300",
        global = true
    )]
    pub(crate) url: String,
    /// Print JSON instead of tables (one document; `top`: one per line).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub(crate) color: Color,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// A job state on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum State {
    /// Waiting to run.
    Ready,
    /// Waiting for its delay.
    Delayed,
    /// Running.
    Reserved,
    /// Set aside after failing.
    Buried,
}

impl From<State> for JobState {
    fn from(s: State) -> Self {
        match s {
            State::Ready => JobState::Ready,
            State::Delayed => JobState::Delayed,
            State::Reserved => JobState::Reserved,
            State::Buried => JobState::Buried,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Tubes with their counts, summed over every server.
    Tubes {
        /// Include the runtime's own bsjobs.* tubes.
        #[arg(long)]
        all: bool,
    },
    /// Jobs of a tube, newest first, decoded.
    Jobs {
        /// The tube.
        tube: String,
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// Jobs to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue below this job (the cursor a previous page printed).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
        /// Job ids looked at per server before stopping with a cursor.
        #[arg(long, default_value_t = bsjobs_core::admin::DEFAULT_BUDGET)]
        budget: u64,
    },
    /// One job: its state, counters and decoded envelope.
    Show {
        /// Job id (id@host:port when the URL has several servers).
        job: String,
    },
    /// Kick buried jobs of a tube back to ready.
    Kick {
        /// The tube.
        tube: String,
        /// Every buried job of the tube.
        #[arg(long, conflicts_with = "jobs")]
        all: bool,
        /// Job ids.
        #[arg(value_name = "ID")]
        jobs: Vec<String>,
    },
    /// Delete jobs of a tube (not running ones).
    Delete {
        /// The tube.
        tube: String,
        /// Every buried job of the tube.
        #[arg(long, conflicts_with = "jobs")]
        all: bool,
        /// Job ids.
        #[arg(value_name = "ID")]
        jobs: Vec<String>,
    },
    /// Stop a job, or a whole repeating chain.
    Cancel {
        /// A job id (its chain, if it has one, is cancelled too).
        #[arg(required_unless_present = "chain")]
        job: Option<String>,
        /// A chain id (see `bsjobs chains`).
        #[arg(long, conflicts_with = "job")]
        chain: Option<String>,
    },
    /// Repeating chains and their current job.
    Chains {
        /// Job ids looked at per server.
        #[arg(long, default_value_t = bsjobs_core::admin::DEFAULT_BUDGET)]
        budget: u64,
    },
    /// Stop handing out jobs of a tube for a while (e.g. 60s, 5m, 1h).
    Pause {
        /// The tube.
        tube: String,
        /// How long: 90, 60s, 5m, 2h, 1d, 1h30m.
        duration: String,
    },
    /// End the pause of a tube.
    Resume {
        /// The tube.
        tube: String,
    },
    /// A live view of servers, tubes and rates; Ctrl-C stops it.
    Top {
        /// Time between refreshes (e.g. 2s, 500ms).
        #[arg(long, default_value = "2s")]
        interval: String,
        /// Stop after this many refreshes.
        #[arg(long)]
        iterations: Option<u64>,
        /// One refresh, then exit.
        #[arg(long, conflicts_with = "iterations")]
        once: bool,
        /// Include the runtime's own bsjobs.* tubes.
        #[arg(long)]
        all: bool,
    },
    /// Serve the web dashboard.
    Web(WebArgs),
    /// Print a shell completion script: bsjobs completions bash > /etc/bash_completion.d/bsjobs
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `bsjobs web`.
#[derive(Debug, clap::Args)]
pub(crate) struct WebArgs {
    /// Address to listen on. Beyond loopback it needs --token or --basic.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Require this bearer token (Authorization: Bearer …, or ?token=… once).
    #[arg(long, env = "BSJOBS_WEB_TOKEN")]
    pub(crate) token: Option<String>,
    /// Require HTTP basic auth, USER:PASSWORD.
    #[arg(long, env = "BSJOBS_WEB_BASIC")]
    pub(crate) basic: Option<String>,
    /// Show, never act: every action is refused.
    #[arg(long)]
    pub(crate) read_only: bool,
    /// Answer to this Host name too (repeatable). Without auth only
    /// loopback names are answered, against DNS rebinding.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub(crate) allow_hosts: Vec<String>,
}

/// Parses `90`, `60s`, `5m`, `2h`, `1d`, `1h30m` (or `500ms` alone).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}: write e.g. 90, 60s, 5m, 2h, 1d or 1h30m");
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(s) = t.parse::<u64>() {
        return Ok(Duration::from_secs(s));
    }
    if let Some(ms) = t.strip_suffix("ms").and_then(|m| m.parse::<u64>().ok()) {
        return Ok(Duration::from_millis(ms));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let s = |t| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(s("90"), Ok(90));
        assert_eq!(s("60s"), Ok(60));
        assert_eq!(s("1h30m"), Ok(5400));
        assert_eq!(s("2d"), Ok(172_800));
        assert_eq!(parse_duration("250ms").unwrap().as_millis(), 250);
        for bad in ["", "s", "5x", "1.5s", "10m5", "-3s"] {
            assert!(s(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
