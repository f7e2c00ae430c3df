// A raw job's body carries no counters, so it cannot repeat.
#[bsjobs::job(raw, repeat = "1m", max = 3)]
fn repeating(body: Vec<u8>) {
    let _ = body;
}

#[bsjobs::job(raw, cron = "0 9 * * *")]
fn scheduled(body: Vec<u8>) {
    let _ = body;
}

fn main() {}
