//! The same enqueue and drain with beanstalkd writing a binlog, against the
//! raw ceilings measured on a binlog server too.

use crate::{progress, ratio, sep, Bench};

pub(crate) async fn run(b: &mut Bench) {
    progress("binlog: ceilings");
    let bc_put = b.ceiling_put(true).await;
    b.row(
        "binlog ceiling: raw pipelined put",
        sep(bc_put),
        "puts/s",
        "1.00 (binlog put ceiling)".into(),
    );
    let bc_rd = b.ceiling_drain(true).await;
    b.row(
        "binlog ceiling: raw pipelined reserve+delete",
        sep(bc_rd),
        "jobs/s",
        "1.00 (binlog r+d ceiling)".into(),
    );
    progress("binlog: 64 tasks enqueue");
    let be64 = b.enqueue("conc", true).await;
    b.row(
        "binlog enqueue: Job::enqueue, 64 tasks",
        sep(be64),
        "jobs/s",
        ratio(be64, bc_put, "binlog put ceiling"),
    );
    progress("binlog: drain");
    let n = b.plan.jobs;
    let bd = b.drain(n, b.best_conc, true).await;
    b.row(
        format!("binlog drain {}: worker {}", sep(n as f64), bd.label()),
        sep(bd.rate()),
        "jobs/s",
        ratio(bd.rate(), bc_rd, "binlog r+d ceiling"),
    );
}
