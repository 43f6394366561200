//! Compile-time behaviour of `#[instrument]`: misuse is an error on the offending token
//! (each `tests/ui/err/*.rs` with its checked-in `.stderr`), and expansions are hygienic.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/err/*.rs");
}
