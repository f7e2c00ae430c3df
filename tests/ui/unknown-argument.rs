#[bsjobs::job(tueb = "email")]
fn misspelt() {}

#[bsjobs::job(retry = 5)]
fn synonym() {}

#[bsjobs::job(colour = "red")]
fn unrelated() {}

#[bsjobs::job(priority = 1, bsjobs::tube = "x")]
fn path_key() {}

fn main() {}
