#[otel_lite::instrument(kind = backend)]
fn f() {}

fn main() {
    f();
}
