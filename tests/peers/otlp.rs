//! The Python OTLP receiver (`otlp_receiver.py`) driven from Rust tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value as Json;

use super::{python, wait_for, Guard};

/// A running receiver on 127.0.0.1; killed on drop.
pub struct OtlpReceiver {
    _process: Guard,
    port: u16,
    grpc_port: u16,
    out: PathBuf,
    control: PathBuf,
    scheme: &'static str,
}

impl OtlpReceiver {
    /// Starts the receiver and waits (bounded) until it listens.
    pub fn start() -> OtlpReceiver {
        Self::start_on(0)
    }

    /// Starts the receiver on `port` (0: a free one).
    pub fn start_on(port: u16) -> OtlpReceiver {
        Self::start_with(port, None, None)
    }

    /// Starts a receiver that speaks only TLS, with `certificate` and `key` (PEM files);
    /// its endpoints are then `https://`.
    #[allow(dead_code)] // used by the TLS tests only
    pub fn start_tls(certificate: &Path, key: &Path) -> OtlpReceiver {
        Self::start_with(0, Some((certificate, key)), None)
    }

    /// Like `start_tls`, requiring a client certificate signed by `client_ca` (mutual TLS).
    #[allow(dead_code)] // used by the TLS tests only
    pub fn start_mutual_tls(certificate: &Path, key: &Path, client_ca: &Path) -> OtlpReceiver {
        Self::start_with(0, Some((certificate, key)), Some(client_ca))
    }

    fn start_with(port: u16, tls: Option<(&Path, &Path)>, client_ca: Option<&Path>) -> OtlpReceiver {
        let dir =
            std::env::temp_dir().join(format!("otel-lite-otlp-{}-{}", std::process::id(), otel_lite::now_unix_nanos()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (out, control) = (dir.join("requests.jsonl"), dir.join("control.json"));
        std::fs::write(&out, "").expect("out file");
        std::fs::write(&control, "{}").expect("control file");
        let script = super::repo_root().join("tests/peers/otlp_receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(&out)
            .arg(&control)
            .arg(port.to_string())
            .args(tls.map(|(c, k)| [c.as_os_str().to_owned(), k.as_os_str().to_owned()]).into_iter().flatten())
            .args(client_ca.map(|ca| ca.as_os_str().to_owned()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the Python OTLP receiver");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let ports: Vec<u16> = line
            .strip_prefix("READY ")
            .map(|p| p.split_whitespace().filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default();
        let (port, grpc_port) = ports.first().copied().zip(ports.get(1).copied()).unwrap_or_else(|| {
            panic!(
                "required peer: the Python OTLP receiver did not start (is opentelemetry-proto installed in the venv? \
                 run scripts/test.sh); it printed {line:?}"
            )
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        OtlpReceiver { _process: Guard(child), port, grpc_port, out, control, scheme }
    }

    /// `http://127.0.0.1:<port>` (`https://` for a TLS receiver).
    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// `http://127.0.0.1:<grpc port>` (the gRPC endpoint; `https://` for a TLS receiver).
    pub fn grpc_endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.grpc_port)
    }

    /// Sets the scripted answers (see the receiver's docs).
    pub fn script(&self, script: Json) {
        std::fs::write(&self.control, script.to_string()).expect("control file");
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Json> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("receiver writes JSON lines"))
            .collect()
    }

    /// The requests of `signal`, waiting (bounded) until there are at least `n`.
    pub fn wait_for(&self, signal: &str, n: usize, limit: Duration) -> Vec<Json> {
        wait_for(limit, &format!("{n} {signal} request(s)"), || {
            let r: Vec<Json> = self.requests().into_iter().filter(|r| r["signal"] == signal).collect();
            (r.len() >= n).then_some(r)
        })
    }
}

/// Every span in decoded trace export requests, across resources and scopes.
pub fn spans_of(requests: &[Json]) -> Vec<Json> {
    items_of(requests, "resourceSpans", "scopeSpans", "spans")
}

/// Every log record in decoded log export requests, across resources and scopes.
pub fn log_records_of(requests: &[Json]) -> Vec<Json> {
    items_of(requests, "resourceLogs", "scopeLogs", "logRecords")
}

fn items_of(requests: &[Json], resources: &str, scopes: &str, items: &str) -> Vec<Json> {
    let list = |v: &Json, key: &str| v[key].as_array().cloned().unwrap_or_default();
    requests
        .iter()
        .flat_map(|r| list(&r["body"], resources))
        .flat_map(|r| list(&r, scopes))
        .flat_map(|s| list(&s, items))
        .collect()
}
