// A cron job's runs come from its schedule: nothing else may start, delay,
// limit or feed them.
#[bsjobs::job(cron = "0 9 * * *", repeat = "1h")]
fn with_repeat() {}

#[bsjobs::job(cron = "0 9 * * *", delay = "10s")]
fn with_delay() {}

#[bsjobs::job(cron = "0 9 * * *", max = 3)]
fn with_max() {}

#[bsjobs::job(cron = "0 9 * * *")]
fn with_arguments(report: String, day: u32) {
    let _ = (report, day);
}

fn main() {}
