#[bsjobs::job]
struct Email {
    to: String,
}

fn main() {}
