#[otel_lite::instrument(args, skip(password, tokn))]
fn login(user: &str, password: &str, token: &str) {
    let _ = (user, password, token);
}

fn main() {
    login("a", "b", "c");
}
