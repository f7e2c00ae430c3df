const PRIORITY: u32 = 5;

#[bsjobs::job(priority = "high")]
fn string_for_integer() {}

#[bsjobs::job(tube = 5)]
fn integer_for_string() {}

#[bsjobs::job(retries = -1)]
fn negative() {}

#[bsjobs::job(ttr = true)]
fn boolean_for_duration() {}

#[bsjobs::job(priority = PRIORITY)]
fn constant() {}

#[bsjobs::job(crate = bsjobs)]
fn crate_path_not_a_string() {}

#[bsjobs::job(priority = 10u8)]
fn suffix() {}

fn main() {}
