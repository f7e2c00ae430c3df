// `raw` is a flag, given once.
#[bsjobs::job(raw = true)]
fn with_a_value(body: Vec<u8>) {
    let _ = body;
}

#[bsjobs::job(raw("bytes"))]
fn called(body: Vec<u8>) {
    let _ = body;
}

#[bsjobs::job(raw, tube = "x", raw)]
fn twice(body: Vec<u8>) {
    let _ = body;
}

fn main() {}
