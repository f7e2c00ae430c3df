#[bsjobs::job(priority = 4294967296)]
fn priority_overflow() {}

#[bsjobs::job(delay = "50000d")]
fn too_long() {}

#[bsjobs::job(ttr = "0s")]
fn zero_ttr() {}

#[bsjobs::job(repeat = 0, max = 0)]
fn zero_repeat_and_max() {}

#[bsjobs::job(timeout = "0m")]
fn zero_timeout() {}

fn main() {}
