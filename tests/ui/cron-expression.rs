// A cron expression is parsed at compile time, as the worker parses it.
#[bsjobs::job(cron = "0 9 * *")]
fn four_fields() {}

#[bsjobs::job(cron = "0 0 9 1 1 * 2030")]
fn with_a_year() {}

#[bsjobs::job(cron = "60 * * * *")]
fn minute_out_of_range() {}

#[bsjobs::job(cron = "0 9 * * MONDAY")]
fn long_day_name() {}

#[bsjobs::job(cron = "0 0 30 2 *")]
fn february_thirtieth() {}

#[bsjobs::job(cron = "")]
fn empty() {}

#[bsjobs::job(cron = 5)]
fn not_a_string() {}

fn main() {}
