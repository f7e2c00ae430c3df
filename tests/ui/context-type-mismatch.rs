// A parameter type named `JobContext` that is not bsjobs' one is reported at
// that type.
mod mine {
    pub struct JobContext;
}

#[bsjobs::job]
async fn not_ours(ctx: mine::JobContext, n: u32) {
    let _ = (ctx, n);
}

fn main() {}
