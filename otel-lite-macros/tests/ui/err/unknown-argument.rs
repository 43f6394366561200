#[otel_lite::instrument(level = "info")]
fn f() {}

fn main() {
    f();
}
