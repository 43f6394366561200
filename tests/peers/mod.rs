//! Finding and running the real peers the integration tests use. A missing peer is a
//! test failure with instructions, never a skip.

#![allow(dead_code)]

pub mod exposition;
pub mod otlp;
pub mod random_registry;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of a required executable, from `$var` or the `PATH`.
pub fn require_binary(name: &str, var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()));
    found.unwrap_or_else(|| {
        panic!("required peer `{name}` not found (set {var} or install it: `scripts/test.sh` installs every peer)")
    })
}

/// The repository root (these helpers are also used from the `benches` package).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("tests/peers").is_dir() {
        manifest.to_path_buf()
    } else {
        manifest.parent().unwrap_or(manifest).to_path_buf()
    }
}

/// The Python interpreter of the venv holding `prometheus-client`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("OTEL_LITE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".peers/venv/bin/python");
    assert!(
        venv.is_file(),
        "required peer: Python with prometheus-client not found at {} (set OTEL_LITE_PYTHON or run scripts/test.sh)",
        venv.display()
    );
    venv
}

/// Runs `program args` with `input` on stdin; returns (exit success, stdout, stderr).
pub fn run_with_stdin(program: &Path, args: &[&str], input: &str) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("waiting for the peer");
    writer.join().expect("stdin writer").expect("writing to the peer's stdin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A free loopback port (bound and released; good enough for a test-local server).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A minimal HTTP/1.1 GET over loopback with a bounded timeout; returns (status, headers, body).
pub fn http_get(addr: &str, path_and_query: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    try_http_get(addr, path_and_query, headers).unwrap_or_else(|e| panic!("GET {addr}{path_and_query}: {e}"))
}

/// Like [`http_get`], but a connection failure is an `Err` (for polling a starting server).
pub fn try_http_get(
    addr: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, head, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).expect("ascii").trim(), 16)
            .expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child process killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Prometheus server on loopback with a given configuration, stopped (and its data
/// removed) when dropped.
pub struct PrometheusUnderTest {
    /// `127.0.0.1:<port>` of its HTTP API.
    pub addr: String,
    dir: PathBuf,
    _child: Guard,
}

impl PrometheusUnderTest {
    /// Starts `binary` with `config` (YAML) and the exemplar store enabled.
    pub fn start(binary: &Path, config: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("otel-lite-prom-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("writing the configuration");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("a log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--enable-feature=exemplar-storage")
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus: {e}"));
        PrometheusUnderTest { addr, dir, _child: Guard(child) }
    }

    /// An instant query: `labels -> value` for each element of the result vector.
    pub fn query(&self, promql: &str) -> Option<Vec<(std::collections::BTreeMap<String, String>, f64)>> {
        let q: String = promql
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, _, body) = try_http_get(&self.addr, &format!("/api/v1/query?query={q}"), &[]).ok()?;
        if status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let result = json["data"]["result"].as_array()?;
        result
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()?
                    .iter()
                    .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect::<Option<_>>()?;
                Some((labels, r["value"][1].as_str()?.parse::<f64>().ok()?))
            })
            .collect()
    }

    /// The value of a query whose result is a single element.
    pub fn single(&self, promql: &str) -> Option<f64> {
        match self.query(promql)?.as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for PrometheusUnderTest {
    fn drop(&mut self) {
        let _ = self._child.0.kill();
        let _ = self._child.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
