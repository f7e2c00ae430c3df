// `tz` names a zone of the IANA time-zone database, checked at compile time.
#[bsjobs::job(cron = "0 9 * * *", tz = "Europe/Berln")]
fn misspelt() {}

#[bsjobs::job(cron = "0 9 * * *", tz = "europe/berlin")]
fn wrong_case() {}

#[bsjobs::job(cron = "0 9 * * *", tz = "CEST+2")]
fn not_a_zone() {}

fn main() {}
