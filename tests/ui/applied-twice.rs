#[bsjobs::job(tube = "a")]
#[bsjobs::job(priority = 1)]
fn twice() {}

fn main() {}
