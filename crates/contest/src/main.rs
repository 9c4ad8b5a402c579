//! In-container test helper.
fn main() {}
