use std::rc::Rc;

// The worker runs jobs on a multi-threaded runtime, so an async job's future
// must be Send; the error points at the function.
#[bsjobs::job]
async fn holds_rc_across_await(n: u32) {
    let shared = Rc::new(n);
    std::future::ready(()).await;
    drop(shared);
}

fn main() {}
