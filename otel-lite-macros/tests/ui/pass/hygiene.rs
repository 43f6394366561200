//! The expansion must not depend on names the user can shadow.
#![no_implicit_prelude]

extern crate otel_lite;
extern crate std as realstd;

#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
mod std {}
#[allow(dead_code)]
mod core {}

#[otel_lite::instrument]
fn plain(x: u32) -> u32 {
    x + 1
}

#[otel_lite::instrument(err, fields(n = x))]
fn fallible(x: u32) -> realstd::result::Result<u32, realstd::string::String> {
    if x > 1 {
        realstd::result::Result::Ok(x)
    } else {
        realstd::result::Result::Err(realstd::string::String::new())
    }
}

#[otel_lite::instrument]
async fn later(x: u32) -> u32 {
    x
}

fn main() {
    let _ = plain(1);
    let _ = fallible(2);
    let _ = later(3);
}
