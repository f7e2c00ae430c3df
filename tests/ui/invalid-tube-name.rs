#[bsjobs::job(tube = "")]
fn empty() {}

#[bsjobs::job(tube = "-email")]
fn leading_dash() {}

#[bsjobs::job(tube = "send email")]
fn space() {}

#[bsjobs::job(tube = "courriel-envoyé")]
fn non_ascii() {}

#[bsjobs::job(
    tube = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
)]
fn too_long() {}

#[bsjobs::job]
fn envoyé() {}

fn main() {}
