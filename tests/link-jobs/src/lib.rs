//! Jobs that live in a crate of their own, as in most applications (a
//! `shop-jobs` crate used by the web front end and by the worker).
//! `tests/link.rs` runs them from a binary that names this crate only
//! through `bsjobs::link!`; `tests/link_missing.rs` shows what happens
//! without it.

/// Fails for 13, succeeds for anything else.
#[bsjobs::job(tube = "linked_job", retries = 0)]
pub async fn linked(n: u32) -> Result<(), String> {
    if n == 13 {
        return Err("unlucky".into());
    }
    Ok(())
}
