//! One module per scenario. Each `run` adds its rows, notes and targets to
//! the [`Bench`](crate::Bench) report; every figure is read against a
//! ceiling measured in the same run ([`ceilings`]), or against a control
//! measured next to it (latency, pickup, chains).

pub(crate) mod binlog;
pub(crate) mod ceilings;
pub(crate) mod chains;
pub(crate) mod drain;
pub(crate) mod enqueue;
pub(crate) mod flat;
pub(crate) mod fleet;
pub(crate) mod idle;
pub(crate) mod latency;
pub(crate) mod lifecycle;
pub(crate) mod mixed;
pub(crate) mod pickup;

/// The targets a scenario judges, listed as "not run" when it is skipped.
pub(crate) fn targets(scenario: &str) -> &'static [&'static str] {
    match scenario {
        "enqueue" => enqueue::TARGETS,
        "drain" => drain::TARGETS,
        "flat" => flat::TARGETS,
        "latency" => latency::TARGETS,
        "idle" => idle::TARGETS,
        "pickup" => pickup::TARGETS,
        "chains" => chains::TARGETS,
        _ => &[],
    }
}
