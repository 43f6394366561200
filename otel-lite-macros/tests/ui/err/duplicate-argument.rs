#[otel_lite::instrument(err, name = "a", err)]
fn f() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = f();
}
