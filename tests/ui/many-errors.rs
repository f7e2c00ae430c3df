// Every mistake is reported in one build, and the function itself still
// exists, so its callers produce no follow-on errors.
#[bsjobs::job(tube = "bad tube", priorty = 1, ttr = "1.5s", max = 3)]
fn everything_wrong(to: &str) {
    let _ = to;
}

fn main() {
    everything_wrong("still callable");
}
