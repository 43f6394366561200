//! The resource: attributes of the entity producing telemetry (`service.name`, ...).

use crate::attributes::{AttributeSet, KeyValue, Value};

/// Attributes describing the process that produces the telemetry.
///
/// ```
/// use otel_lite_core::Resource;
/// let r = Resource::from_env_with(|k| match k {
///     "OTEL_SERVICE_NAME" => Some("checkout".into()),
///     "OTEL_RESOURCE_ATTRIBUTES" => Some("deployment.environment=prod,team=pay%20ments".into()),
///     _ => None,
/// });
/// assert_eq!(r.service_name(), "checkout");
/// assert_eq!(r.attributes().get("team").unwrap().to_string(), "pay ments");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    attributes: AttributeSet,
}

/// A malformed entry found in `OTEL_RESOURCE_ATTRIBUTES`. Any such entry discards the whole
/// value, as the specification says: a half-applied list would be harder to notice.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceWarning {
    /// The malformed entry.
    pub entry: String,
    /// Why.
    pub reason: &'static str,
}

impl Resource {
    /// A resource with exactly these attributes.
    pub fn new(attrs: &[KeyValue]) -> Self {
        Resource { attributes: AttributeSet::new(attrs) }
    }

    /// The default resource from the process environment (`OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`) plus the SDK's own attributes. A malformed
    /// `OTEL_RESOURCE_ATTRIBUTES` is reported on stderr once and discarded.
    pub fn from_env() -> Self {
        let (r, warnings) = Self::from_env_reporting(|k| std::env::var(k).ok());
        for w in warnings {
            eprintln!("otel-lite: OTEL_RESOURCE_ATTRIBUTES discarded: entry {:?}: {}", w.entry, w.reason);
        }
        r
    }

    /// Like [`Resource::from_env`] with a custom variable source, ignoring warnings.
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Self {
        Self::from_env_reporting(get).0
    }

    /// Builds the resource from a variable source and returns the malformed entries of
    /// `OTEL_RESOURCE_ATTRIBUTES`; if there are any, none of its entries is used.
    ///
    /// Precedence (lowest first): SDK attributes, `OTEL_RESOURCE_ATTRIBUTES`,
    /// `OTEL_SERVICE_NAME`. Without a service name, `unknown_service:<executable>`.
    pub fn from_env_reporting(get: impl Fn(&str) -> Option<String>) -> (Self, Vec<ResourceWarning>) {
        let mut attrs = vec![
            KeyValue::new("telemetry.sdk.name", "otel-lite"),
            KeyValue::new("telemetry.sdk.language", "rust"),
            KeyValue::new("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        ];
        let mut warnings = Vec::new();
        if let Some(raw) = get("OTEL_RESOURCE_ATTRIBUTES") {
            let mut parsed = Vec::new();
            for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                match parse_entry(entry) {
                    Ok(kv) => parsed.push(kv),
                    Err(reason) => warnings.push(ResourceWarning { entry: entry.to_string(), reason }),
                }
            }
            if warnings.is_empty() {
                attrs.extend(parsed);
            }
        }
        if let Some(name) = get("OTEL_SERVICE_NAME").filter(|n| !n.is_empty()) {
            attrs.push(KeyValue::new("service.name", name));
        }
        if !attrs.iter().any(|kv| kv.key().as_str() == "service.name") {
            let exe = std::env::current_exe()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            attrs.push(KeyValue::new("service.name", format!("unknown_service:{exe}")));
        }
        (Resource::new(&attrs), warnings)
    }

    /// The attributes.
    pub fn attributes(&self) -> &AttributeSet {
        &self.attributes
    }

    /// The `service.name` attribute.
    pub fn service_name(&self) -> String {
        self.attributes.get("service.name").map(Value::to_string).unwrap_or_default()
    }
}

fn parse_entry(entry: &str) -> Result<KeyValue, &'static str> {
    let (k, v) = entry.split_once('=').ok_or("expected key=value")?;
    let k = percent_decode(k.trim()).ok_or("invalid percent-encoding in key")?;
    let v = percent_decode(v.trim()).ok_or("invalid percent-encoding in value")?;
    if k.is_empty() {
        return Err("empty key");
    }
    Ok(KeyValue::new(k, v))
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Exactly two hex digits (`from_str_radix` alone would also take a sign: `%+5`).
            let digit = |j: usize| bytes.get(j).and_then(|&b| char::from(b).to_digit(16));
            let (high, low) = (digit(i + 1)?, digit(i + 2)?);
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_takes_exactly_two_hex_digits() {
        assert_eq!(percent_decode("a%20b%2C%3d").as_deref(), Some("a b,="));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        for bad in ["%+5", "%-1", "%2", "%", "%g0", "% 1", "%C3"] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn service_name_precedence_and_default() {
        let r = Resource::from_env_with(|k| {
            (k == "OTEL_RESOURCE_ATTRIBUTES").then(|| "service.name=from-attrs,a=1".to_string())
        });
        assert_eq!(r.service_name(), "from-attrs");
        let r = Resource::from_env_with(|k| match k {
            "OTEL_RESOURCE_ATTRIBUTES" => Some("service.name=from-attrs".into()),
            "OTEL_SERVICE_NAME" => Some("from-name".into()),
            _ => None,
        });
        assert_eq!(r.service_name(), "from-name");
        let r = Resource::from_env_with(|_| None);
        assert!(r.service_name().starts_with("unknown_service:"), "{}", r.service_name());
    }

    #[test]
    fn a_malformed_entry_is_reported_and_discards_the_whole_value() {
        let (r, w) = Resource::from_env_reporting(|k| {
            (k == "OTEL_RESOURCE_ATTRIBUTES").then(|| "good=1,novalue,bad=%zz,=empty,ok=a%2Cb".to_string())
        });
        let entries: Vec<_> = w.iter().map(|w| w.entry.as_str()).collect();
        assert_eq!(entries, ["novalue", "bad=%zz", "=empty"]);
        assert!(r.attributes().get("good").is_none() && r.attributes().get("ok").is_none());
        assert_eq!(r.attributes().get("telemetry.sdk.name").unwrap().to_string(), "otel-lite");
        let (r, w) = Resource::from_env_reporting(|k| {
            (k == "OTEL_RESOURCE_ATTRIBUTES").then(|| "good=1, ok=a%2Cb ,".to_string())
        });
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(r.attributes().get("good").unwrap().to_string(), "1");
        assert_eq!(r.attributes().get("ok").unwrap().to_string(), "a,b");
    }
}
