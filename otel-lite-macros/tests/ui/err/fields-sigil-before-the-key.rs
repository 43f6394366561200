#[otel_lite::instrument(fields(?key = 1))]
fn f() {}

fn main() {
    f();
}
