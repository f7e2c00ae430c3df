#[bsjobs::job(ttr = "5 mins later")]
fn words() {}

#[bsjobs::job(delay = "1h30")]
fn missing_unit() {}

#[bsjobs::job(repeat = "")]
fn empty() {}

#[bsjobs::job(backoff = "5 fortnights")]
fn unknown_unit() {}

#[bsjobs::job(timeout = 30s)]
fn unquoted() {}

fn main() {}
