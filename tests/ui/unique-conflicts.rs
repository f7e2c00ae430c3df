// `unique_for` needs an envelope (not `raw`) and is not for cron jobs (a
// cron job already has exactly one chain); a bad window is a bad duration.

#[bsjobs::job(tube = "legacy", raw, unique_for = "1h")]
async fn legacy(body: Vec<u8>) {
    let _ = body;
}

#[bsjobs::job(cron = "0 9 * * *", unique_for = "1h")]
async fn nightly() {}

#[bsjobs::job(unique_for = "1.5h")]
async fn half(n: u64) {
    let _ = n;
}

#[bsjobs::job(unique = "1h")]
async fn alias(n: u64) {
    let _ = n;
}

fn main() {}
