#[bsjobs::job(tube = "a", priority = 1, tube = "b")]
fn twice() {}

#[bsjobs::job(ttr = "5s", ttr = "bad", ttr = 5)]
fn thrice() {}

fn main() {}
