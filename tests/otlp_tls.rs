//! OTLP to `https://` endpoints (feature `otlp-tls`) against the Python receiver serving
//! TLS only, over HTTP/protobuf and gRPC: a certificate authority made for the test with the
//! `openssl` command signs the receiver's certificate; with that CA configured the export
//! arrives, and trusting another CA instead the handshake is refused and the export fails:
//! the receiver's certificate really is verified.

mod peers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use otel_lite::otlp::{OtlpSpanExporter, Signal, SignalConfig, TlsConfig};
use otel_lite::trace::TracerProvider;
use peers::otlp::{spans_of, OtlpReceiver};

/// A CA and a server certificate for 127.0.0.1 signed by it, and another CA that signed
/// nothing, in a fresh directory.
struct Certificates {
    ca: PathBuf,
    other_ca: PathBuf,
    server: PathBuf,
    server_key: PathBuf,
    client: PathBuf,
    client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let openssl = peers::require_binary("openssl", "OPENSSL");
    let out = Command::new(openssl).current_dir(dir).args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn certificates() -> Certificates {
    let dir =
        std::env::temp_dir().join(format!("otel-lite-tls-{}-{}", std::process::id(), otel_lite::now_unix_nanos()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for (key, pem) in [("ca.key", "ca.pem"), ("other-ca.key", "other-ca.pem")] {
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=otel-lite test CA", "-keyout", key, "-out", pem];
        ca.extend(ec);
        ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]);
        openssl(&dir, &ca);
    }
    // A key and a certificate named `name`, signed by `ca.pem`, with the extensions `ext`.
    let signed = |name: &str, subject: &str, ext: &str| {
        let (key, csr, ext_file, pem) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"), format!("{name}.pem"));
        let mut request = vec!["req", "-subj", subject, "-keyout", &key, "-out", &csr];
        request.extend(ec);
        openssl(&dir, &request);
        std::fs::write(dir.join(&ext_file), ext).expect("extensions file");
        let ca = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"];
        let mut sign = vec!["x509", "-req", "-in", &csr, "-extfile", &ext_file, "-out", &pem];
        sign.extend(ca);
        openssl(&dir, &sign);
    };
    signed("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    signed("client", "/CN=otel-lite client", "extendedKeyUsage=clientAuth\n");
    Certificates {
        client: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        server: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    }
}

/// The configuration read from the standard variables, as `init()` would.
fn config(endpoint: &str, grpc: bool, ca: Option<&Path>) -> SignalConfig {
    config_with_client(endpoint, grpc, ca, None)
}

/// `config` with a client certificate and key (mutual TLS).
fn config_with_client(endpoint: &str, grpc: bool, ca: Option<&Path>, client: Option<(&Path, &Path)>) -> SignalConfig {
    let path = |p: &Path| p.display().to_string();
    let (mut c, warnings) = SignalConfig::from_env_with(Signal::Traces, |k| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.to_string()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some(if grpc { "grpc" } else { "http/protobuf" }.into()),
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE" => ca.map(path),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE" => client.map(|(cert, _)| path(cert)),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY" => client.map(|(_, key)| path(key)),
        _ => None,
    });
    assert!(warnings.is_empty(), "{warnings:?}");
    c.timeout = Duration::from_secs(5);
    c
}

fn export_one(config: SignalConfig, name: &str) -> (u64, u64) {
    let exporter = OtlpSpanExporter::new(config).expect("exporter");
    let stats = exporter.stats();
    let provider = TracerProvider::builder().with_simple_exporter(exporter).build();
    drop(provider.tracer("tls").start(name.to_string()));
    (stats.succeeded.load(Ordering::Relaxed), stats.failed.load(Ordering::Relaxed))
}

#[test]
fn https_and_grpc_over_tls_verify_the_receiver() {
    let certs = certificates();
    let receiver = OtlpReceiver::start_tls(&certs.server, &certs.server_key);
    assert!(receiver.endpoint().starts_with("https://"));

    assert_eq!(export_one(config(&receiver.endpoint(), false, Some(&certs.ca)), "over https"), (1, 0));
    assert_eq!(export_one(config(&receiver.grpc_endpoint(), true, Some(&certs.ca)), "over grpc+tls"), (1, 0));
    let requests = receiver.wait_for("traces", 2, Duration::from_secs(10));
    let names: Vec<_> = spans_of(&requests).iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, ["over https", "over grpc+tls"]);
    assert_eq!(requests[1]["content_type"], "application/grpc");

    // Trusting another CA, both transports refuse the receiver.
    assert_eq!(export_one(config(&receiver.endpoint(), false, Some(&certs.other_ca)), "untrusted"), (0, 1));
    assert_eq!(export_one(config(&receiver.grpc_endpoint(), true, Some(&certs.other_ca)), "untrusted"), (0, 1));
    assert_eq!(receiver.requests().len(), 2, "nothing reached the receiver without a trusted certificate");
}

#[test]
fn unusable_certificate_files_are_reported_at_construction() {
    let dir = std::env::temp_dir().join(format!("otel-lite-tls-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    for ca in [not_pem.clone(), dir.join("missing.pem")] {
        for grpc in [false, true] {
            let mut c = config("https://127.0.0.1:1", grpc, None);
            c.tls = TlsConfig { ca_certificate: Some(ca.clone()), ..TlsConfig::default() };
            let error = OtlpSpanExporter::new(c).err().map(|e| e.to_string()).unwrap_or_default();
            let named = error.contains("TLS configuration") && error.contains(&ca.display().to_string());
            assert!(named, "grpc {grpc}: {error}");
        }
    }
}

#[test]
fn mutual_tls_presents_the_client_certificate() {
    let certs = certificates();
    let receiver = OtlpReceiver::start_mutual_tls(&certs.server, &certs.server_key, &certs.ca);
    let client = Some((certs.client.as_path(), certs.client_key.as_path()));
    let with_client = |endpoint: &str, grpc: bool| config_with_client(endpoint, grpc, Some(&certs.ca), client);
    assert_eq!(export_one(with_client(&receiver.endpoint(), false), "mtls https"), (1, 0));
    assert_eq!(export_one(with_client(&receiver.grpc_endpoint(), true), "mtls grpc"), (1, 0));
    // Without a client certificate the receiver refuses the connection.
    assert_eq!(export_one(config(&receiver.endpoint(), false, Some(&certs.ca)), "anonymous"), (0, 1));
    assert_eq!(export_one(config(&receiver.grpc_endpoint(), true, Some(&certs.ca)), "anonymous"), (0, 1));
    let names: Vec<_> =
        spans_of(&receiver.wait_for("traces", 2, Duration::from_secs(10))).iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, ["mtls https", "mtls grpc"]);
}
