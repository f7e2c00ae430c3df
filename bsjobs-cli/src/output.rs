//! Printing: JSON for scripts; on a terminal aligned tables with colour;
//! otherwise tab-separated lines without a header, for `cut` and `awk`.

use crate::cli::Color;
use bsjobs_core::admin::{Admin, Body, ChainList, JobInfo, JobPage, TubeInfo};
use bsjobs_core::proto::stats::JobState;
use serde::Serialize;
use std::io::{IsTerminal as _, Write as _};

/// Where and how results are printed.
pub(crate) struct Out {
    json: bool,
    tty: bool,
    color: bool,
}

impl Out {
    pub(crate) fn new(json: bool, color: Color) -> Self {
        let tty = std::io::stdout().is_terminal();
        let color = match color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        };
        Out { json, tty, color }
    }

    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    pub(crate) fn is_tty(&self) -> bool {
        self.tty
    }

    fn print_json<T: Serialize + ?Sized>(&self, v: &T) {
        // Stdout is line-buffered: one write per line of pretty JSON
        // otherwise.
        let mut o = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        let _ = serde_json::to_writer_pretty(&mut o, v);
        let _ = writeln!(o);
        let _ = o.flush();
    }

    /// A one-line JSON document (for `top`, one per refresh).
    pub(crate) fn json_line<T: Serialize + ?Sized>(&self, v: &T) {
        let mut o = std::io::stdout().lock();
        let _ = serde_json::to_writer(&mut o, v);
        let _ = writeln!(o);
        let _ = o.flush();
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color && !text.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn state(&self, s: JobState) -> String {
        let code = match s {
            JobState::Ready => "32",
            JobState::Delayed => "33",
            JobState::Reserved => "36",
            JobState::Buried => "31",
        };
        self.paint(code, s.as_str())
    }

    /// Renders rows: aligned with a bold header on a terminal, else TSV.
    /// Cells may hold colour codes; widths count visible characters.
    pub(crate) fn table(&self, header: &[&str], rows: &[Vec<String>]) -> String {
        let mut s = String::new();
        if !self.tty {
            for r in rows {
                s.push_str(&r.join("\t"));
                s.push('\n');
            }
            return s;
        }
        let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for r in rows {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(visible_len(c));
            }
        }
        let line = |cells: Vec<String>| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(c);
                } else {
                    l.push_str(c);
                    l.push_str(&" ".repeat(width[i] - visible_len(c) + 2));
                }
            }
            l.trim_end().to_owned() + "\n"
        };
        s.push_str(&line(header.iter().map(|h| self.paint("1", h)).collect()));
        for r in rows {
            s.push_str(&line(r.clone()));
        }
        s
    }

    pub(crate) fn tubes(&self, tubes: &[TubeInfo]) {
        if self.json {
            return self.print_json(tubes);
        }
        print!("{}", self.tubes_table(tubes, None));
    }

    /// The tube table; with `rates`, two more columns (puts/s, deletes/s).
    pub(crate) fn tubes_table(&self, tubes: &[TubeInfo], rates: Option<&[(f64, f64)]>) -> String {
        let mut header = vec![
            "TUBE", "READY", "DELAYED", "RESERVED", "BURIED", "TOTAL", "PAUSED",
        ];
        if rates.is_some() {
            header.extend(["PUT/S", "DELETE/S"]);
        }
        let rows: Vec<Vec<String>> = tubes
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut r = vec![
                    t.name.clone(),
                    t.ready.to_string(),
                    t.delayed.to_string(),
                    t.reserved.to_string(),
                    if t.buried > 0 {
                        self.paint("31", &t.buried.to_string())
                    } else {
                        "0".into()
                    },
                    t.total_jobs.to_string(),
                    if t.paused_for > 0 {
                        self.paint("33", &format!("{}s", t.paused_for))
                    } else {
                        "-".into()
                    },
                ];
                if let Some(rates) = rates {
                    let (p, d) = rates.get(i).copied().unwrap_or_default();
                    r.push(format!("{p:.1}"));
                    r.push(format!("{d:.1}"));
                }
                r
            })
            .collect();
        self.table(&header, &rows)
    }

    pub(crate) fn jobs(&self, admin: &Admin, page: &JobPage) {
        if self.json {
            return self.print_json(page);
        }
        let rows: Vec<Vec<String>> = page
            .jobs
            .iter()
            .map(|j| {
                let (attempt, args, err) = match &j.body {
                    Body::Envelope(e) => (
                        e.attempt.to_string(),
                        e.args.to_string(),
                        e.error.clone().unwrap_or_default(),
                    ),
                    Body::ChainToken { chain } => {
                        ("-".into(), format!("chain token {chain}"), String::new())
                    }
                    Body::Raw { text, .. } => ("-".into(), format!("raw: {text}"), String::new()),
                };
                vec![
                    admin.label(j.at),
                    self.state(j.state),
                    human_secs(j.age),
                    attempt,
                    self.cut(&args, 60),
                    self.paint("31", &self.cut(&err, 60)),
                ]
            })
            .collect();
        print!(
            "{}",
            self.table(&["ID", "STATE", "AGE", "ATTEMPT", "ARGS", "ERROR"], &rows)
        );
        if self.tty {
            match page.next {
                Some(n) => println!(
                    "{} of {} shown; next page: --after {}",
                    page.jobs.len(),
                    page.matching,
                    admin.label(n)
                ),
                None => println!("{} job(s)", page.jobs.len()),
            }
        } else if let Some(n) = page.next {
            eprintln!("more: --after {}", admin.label(n));
        }
    }

    /// On a terminal, cuts long text to `n` characters and folds newlines;
    /// elsewhere only folds (TSV cells must stay on one line).
    fn cut(&self, text: &str, n: usize) -> String {
        let one: String = text
            .chars()
            .map(|c| {
                if c == '\n' || c == '\t' || c == '\r' {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        if self.tty && one.chars().count() > n {
            one.chars().take(n - 1).collect::<String>() + "…"
        } else {
            one
        }
    }

    pub(crate) fn job(&self, admin: &Admin, j: &JobInfo) {
        if self.json {
            return self.print_json(j);
        }
        let mut lines = vec![
            ("id", admin.label(j.at)),
            ("tube", j.tube.clone()),
            ("state", self.state(j.state)),
            ("priority", j.pri.to_string()),
            ("age", human_secs(j.age)),
            ("ttr", format!("{}s", j.ttr)),
        ];
        if matches!(j.state, JobState::Delayed | JobState::Reserved) {
            lines.push(("time left", format!("{}s", j.time_left)));
        }
        lines.push((
            "counters",
            format!(
                "reserves {} buries {} kicks {}",
                j.reserves, j.buries, j.kicks
            ),
        ));
        match &j.body {
            Body::Envelope(e) => {
                lines.push(("attempt", e.attempt.to_string()));
                lines.push(("run", e.run.to_string()));
                if let Some(c) = &e.chain {
                    lines.push(("chain", format!("{c} (gen {})", e.gen)));
                }
                if let Some(p) = e.prev {
                    lines.push(("replaces", p.to_string()));
                }
                if let Some(err) = &e.error {
                    lines.push(("error", self.paint("31", err)));
                }
                lines.push((
                    "args",
                    serde_json::to_string_pretty(&e.args).unwrap_or_default(),
                ));
            }
            Body::ChainToken { chain } => lines.push(("chain token", chain.clone())),
            Body::Raw { text, len, reason } => {
                lines.push(("body", format!("{len} bytes, not an envelope ({reason})")));
                lines.push(("raw", text.clone()));
            }
        }
        let mut o = std::io::stdout().lock();
        for (k, v) in lines {
            let _ = writeln!(o, "{:<10} {}", self.paint("1", k), v);
        }
    }

    pub(crate) fn chains(&self, admin: &Admin, list: &ChainList) {
        if self.json {
            return self.print_json(list);
        }
        let rows: Vec<Vec<String>> = list
            .chains
            .iter()
            .map(|c| {
                let (job, tube, state, next, run) = match &c.job {
                    Some(j) => (
                        admin.label(j.at),
                        j.tube.clone(),
                        self.state(j.state),
                        if j.state == JobState::Delayed {
                            format!("in {}", human_secs(j.time_left.max(0) as u64))
                        } else {
                            "-".into()
                        },
                        j.envelope().map_or("-".into(), |e| e.run.to_string()),
                    ),
                    None => ("?".into(), "?".into(), "?".into(), "?".into(), "?".into()),
                };
                vec![
                    c.chain.clone(),
                    tube,
                    job,
                    state,
                    next,
                    run,
                    c.token_gen.map_or("-".into(), |g| g.to_string()),
                ]
            })
            .collect();
        print!(
            "{}",
            self.table(
                &["CHAIN", "TUBE", "JOB", "STATE", "NEXT RUN", "RUNS", "GEN"],
                &rows
            )
        );
        if !list.complete {
            eprintln!("bsjobs: the walk ran out of budget; some current jobs may be missing (raise --budget)");
        }
    }

    /// Reports an action: a sentence on a terminal or in text mode, the
    /// value with --json.
    pub(crate) fn done(&self, text: &str, json: serde_json::Value) {
        if self.json {
            self.print_json(&json);
        } else {
            println!("{text}");
        }
    }
}

/// Characters a terminal shows (colour codes excluded).
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// `42s`, `3m20s`, `2h5m`, `3d4h`.
pub(crate) fn human_secs(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_visible_width() {
        let out = Out {
            json: false,
            tty: true,
            color: true,
        };
        let t = out.table(
            &["A", "B"],
            &[
                vec![out.paint("31", "xyz"), "1".into()],
                vec!["w".into(), "22".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        // The B column starts at the same visible column on every line.
        let col = |l: &str| visible_len(&l[..l.rfind(' ').unwrap() + 1]);
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[2]));
        let plain = Out {
            json: false,
            tty: false,
            color: false,
        };
        assert_eq!(
            plain.table(&["A", "B"], &[vec!["x".into(), "1".into()]]),
            "x\t1\n"
        );
    }

    #[test]
    fn seconds_read_as_durations() {
        assert_eq!(human_secs(59), "59s");
        assert_eq!(human_secs(200), "3m20s");
        assert_eq!(human_secs(7500), "2h5m");
        assert_eq!(human_secs(90_000), "1d1h");
    }
}
