#[bsjobs::job]
const fn constant() {}

#[bsjobs::job]
unsafe fn dangerous() {}

#[bsjobs::job]
extern "C" fn foreign() {}

fn main() {}
