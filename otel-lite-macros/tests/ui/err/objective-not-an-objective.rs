#[otel_lite::instrument(objective = "checkout")]
fn f() {}

fn main() {
    f();
}
