//! `deploy/` is what the generator writes for the quickstart, byte for byte.

use std::path::Path;

const REGENERATE: &str = "cargo run -p otel-lite-kube -- --quickstart --out deploy";

#[test]
fn deploy_matches_the_generator() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut stale = Vec::new();
    for (path, contents) in otel_lite_kube::render(&otel_lite_kube::Spec::quickstart()) {
        match std::fs::read_to_string(deploy.join(&path)) {
            Ok(committed) if committed == contents => {}
            Ok(_) => stale.push(format!("{} differs", path.display())),
            Err(e) => stale.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "deploy/ is stale ({}); regenerate from the repository root with:\n    {REGENERATE}",
        stale.join(", ")
    );
}
