//! `JobContext` in any position of async and plain jobs, under any pattern,
//! beside a cron schedule, and the function still callable directly.
#![deny(warnings, missing_docs, unreachable_pub)]

use bsjobs::JobContext;

/// Context first.
#[bsjobs::job]
pub async fn first(ctx: JobContext, to: String) -> Result<(), String> {
    let _ = (ctx.id, ctx.attempt, to);
    Ok(())
}

#[bsjobs::job]
fn middle(a: u32, mut ctx: bsjobs::JobContext, b: Vec<String>) {
    ctx.attempt += 1;
    let _ = (a, ctx, b);
}

#[bsjobs::job]
async fn last(n: u64, _: ::bsjobs::JobContext) {
    let _ = n;
}

#[bsjobs::job(cron = "0 9 * * *")]
fn scheduled(ctx: JobContext) {
    let _ = ctx.run;
}

#[bsjobs::job(repeat = "1m")]
fn destructured(JobContext { run, chain, .. }: JobContext) {
    let _ = (run, chain);
}

fn main() {
    let _ = First::new("a@b.c".into());
    let _ = Middle::new(1, vec![]);
    let _ = Last::new(2);
    let _ = Scheduled::new();
    let _ = Destructured::new();
    middle(1, JobContext::new("middle", 1), vec![]);
    scheduled(JobContext::new("scheduled", 2));
    let _ = (first, last, destructured);
}
