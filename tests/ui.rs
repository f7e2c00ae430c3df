//! Compile-time behaviour of `#[bsjobs::job]`: every misuse is reported at the
//! offending token with a message that says what to write instead.
//!
//! After changing a message, regenerate with `TRYBUILD=overwrite` and review
//! every `.stderr` diff by eye.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    // Paths are relative to this package's root (`tests/`).
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/*.rs");
}
