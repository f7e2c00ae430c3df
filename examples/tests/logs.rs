//! The examples' logs carry ANSI colours only on a terminal: the test runs
//! itself as a child process with stdout on a pipe and reads what it wrote.

use std::process::{Command, Stdio};

const CHILD: &str = "BSJOBS_EXAMPLES_LOG_CHILD";

#[test]
fn logs_to_a_pipe_have_no_ansi_colours() {
    if std::env::var_os(CHILD).is_some() {
        // The child: log through the examples' setup to the piped stdout.
        bsjobs_examples::init_logging("info", true);
        tracing::warn!(job = 7, "a line for the pipe");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "logs_to_a_pipe_have_no_ansi_colours",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("a line for the pipe"))
        .unwrap_or_else(|| panic!("the child logged: {text}"));
    assert!(
        !line.contains('\u{1b}'),
        "ANSI escape in a piped log: {line:?}"
    );
    assert!(line.contains("WARN") && line.contains("job=7"), "{line}");
}
