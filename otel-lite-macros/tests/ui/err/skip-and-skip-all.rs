#[otel_lite::instrument(skip(a), skip_all)]
fn f(a: u32) {
    let _ = a;
}

fn main() {
    f(1);
}
