#[derive(Debug)]
pub struct NoDisplay;

#[bsjobs::job]
fn number() -> u32 {
    1
}

#[bsjobs::job]
fn option() -> Option<()> {
    None
}

#[bsjobs::job]
async fn value_in_result() -> Result<u32, String> {
    Ok(1)
}

#[bsjobs::job]
async fn error_without_display() -> Result<(), NoDisplay> {
    Err(NoDisplay)
}

fn main() {}
