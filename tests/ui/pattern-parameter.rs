#[bsjobs::job]
fn tuple((width, height): (u32, u32)) {
    let _ = width * height;
}

#[bsjobs::job]
fn wildcard(_: u32) {}

#[bsjobs::job]
fn by_ref(ref name: String) {
    let _ = name;
}

fn main() {}
