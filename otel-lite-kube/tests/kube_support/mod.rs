//! Shared by the integration tests: promtool, scratch directories, YAML out of values.
#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// promtool from `PROMTOOL` or `/usr/bin/promtool`. A missing promtool fails the test:
/// these tests are the proof that the rules load and alert, a skip would hide that.
pub fn promtool() -> PathBuf {
    let path = PathBuf::from(std::env::var_os("PROMTOOL").unwrap_or_else(|| "/usr/bin/promtool".into()));
    assert!(
        path.is_file(),
        "promtool not found at {} (install the Debian package `prometheus` or set PROMTOOL=/path/to/promtool)",
        path.display()
    );
    path
}

/// Runs promtool with `args` in `dir`; kills it after 120 s. Returns (success, output).
pub fn run_promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for promtool") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("promtool {args:?} ran for more than 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("promtool output");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (status.success(), text)
}

/// An empty scratch directory for one test, under the system temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("otel-lite-kube-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Writes `value` as YAML into `dir/name`.
pub fn write_yaml(dir: &Path, name: &str, value: &serde_json::Value) {
    std::fs::write(dir.join(name), otel_lite_kube::yaml::to_yaml(value)).expect("write yaml");
}
