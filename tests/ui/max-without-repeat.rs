#[bsjobs::job(tube = "report", max = 5)]
fn report() {}

fn main() {}
