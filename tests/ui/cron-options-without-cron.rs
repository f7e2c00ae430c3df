// `tz` and `catch_up` describe a cron schedule, so they need `cron`; and
// `catch_up` has two choices.
#[bsjobs::job(tz = "Europe/Berlin")]
fn zone_alone() {}

#[bsjobs::job(repeat = "1h", catch_up = "none")]
fn catch_up_on_repeat() {}

#[bsjobs::job(cron = "0 9 * * *", catch_up = "all")]
fn unknown_choice() {}

fn main() {}
