//! `crate = path` points the expansion at a re-export.
mod telemetry {
    pub use otel_lite as sdk;
}

#[otel_lite::instrument(crate = telemetry::sdk, kind = consumer, in_flight)]
fn handle(message: &str) -> usize {
    message.len()
}

fn main() {
    assert_eq!(handle("hi"), 2);
}
