#[bsjobs::job(ttr = "500ms")]
fn milliseconds() {}

#[bsjobs::job(delay = "1.5s")]
fn fraction() {}

#[bsjobs::job(backoff = 0.5)]
fn float() {}

fn main() {}
