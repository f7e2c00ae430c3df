#[bsjobs::job]
fn text(to: &str) {
    let _ = to;
}

#[bsjobs::job]
fn bytes(data: &[u8], name: &String) {
    let _ = (data, name);
}

#[bsjobs::job]
fn nested(to: Option<&str>) {
    let _ = to;
}

#[bsjobs::job]
fn opaque(to: impl std::fmt::Display) {
    let _ = to.to_string();
}

fn main() {}
