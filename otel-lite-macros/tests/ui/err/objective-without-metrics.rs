const SLO: otel_lite::metrics::Objective = otel_lite::metrics::Objective::new("slo");

#[otel_lite::instrument(metrics = false, objective = SLO)]
fn f() {}

fn main() {
    f();
}
