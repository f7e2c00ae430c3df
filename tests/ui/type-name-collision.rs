#[allow(non_snake_case)]
#[bsjobs::job]
fn Email() {}

fn main() {}
