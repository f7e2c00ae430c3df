#[bsjobs::job(tube)]
fn flag() {}

#[bsjobs::job(tube("email"))]
fn call() {}

fn main() {}
