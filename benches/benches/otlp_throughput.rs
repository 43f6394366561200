//! Export throughput placeholder; replaced below.
fn main() {}
