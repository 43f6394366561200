//! TLS for `https://` endpoints (feature `otlp-tls`): rustls with the `ring` provider.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::config::TlsConfig;
use super::error::OtlpError;

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, OtlpError> {
    let bad = |why: String| OtlpError::Tls(format!("{}: {why}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// The roots trusted for the receiver's certificate: the configured CA file, else the
/// system's certificates.
fn roots(tls: &TlsConfig) -> Result<RootCertStore, OtlpError> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_certificate {
        Some(path) => {
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| OtlpError::Tls(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            // Unreadable system certificates are skipped; none at all is an error below.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    if roots.is_empty() {
        return Err(OtlpError::Tls("no trusted root certificates (set OTEL_EXPORTER_OTLP_CERTIFICATE)".into()));
    }
    Ok(roots)
}

/// The client configuration for `tls`: its roots and, for mutual TLS, its client
/// certificate.
pub(crate) fn client_config(tls: &TlsConfig) -> Result<ClientConfig, OtlpError> {
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| OtlpError::Tls(e.to_string()))?
        .with_root_certificates(roots(tls)?);
    match (&tls.client_certificate, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| OtlpError::Tls(format!("{}: {e}", key.display())))?;
            builder.with_client_auth_cert(certificates(cert)?, key).map_err(|e| OtlpError::Tls(e.to_string()))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// A configuration that trusts nothing, for a client that only ever speaks plain HTTP.
pub(crate) fn plain_only() -> Result<ClientConfig, OtlpError> {
    Ok(ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| OtlpError::Tls(e.to_string()))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}
