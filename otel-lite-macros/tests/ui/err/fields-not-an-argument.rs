#[otel_lite::instrument(fields(user))]
fn f(id: u64) {
    let _ = id;
}

fn main() {
    f(1);
}
