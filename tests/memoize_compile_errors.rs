//! `#[memoize]` refuses what would silently share or mis-key results, with a message that
//! says what to write instead.

#[test]
fn memoize_refuses_ambiguous_uses_at_compile_time() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
