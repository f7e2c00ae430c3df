// A job takes at most one `JobContext`, by value, as a parameter's whole type.
use bsjobs::JobContext;

#[bsjobs::job]
async fn two_contexts(a: JobContext, to: String, b: JobContext) {
    let _ = (a, to, b);
}

#[bsjobs::job]
async fn borrowed(ctx: &JobContext) {
    let _ = ctx;
}

#[bsjobs::job]
fn borrowed_mutably(n: u32, ctx: &mut bsjobs::JobContext) {
    let _ = (n, ctx);
}

#[bsjobs::job]
fn inside_another_type(ctx: Option<JobContext>, all: Vec<(u8, JobContext)>) {
    let _ = (ctx, all);
}

fn main() {}
