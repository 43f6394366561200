//! Content negotiation: which format and encoding a scraper asked for.

use super::encode::Format;

/// Splits a header into `(value, q)` pairs; `q` defaults to 1 and malformed weights count
/// as 0 (not acceptable), so garbage never selects anything.
fn weighted(header: &str) -> impl Iterator<Item = (&str, f32, &str)> {
    header.split(',').filter_map(|item| {
        let mut params = item.split(';');
        let value = params.next()?.trim();
        if value.is_empty() {
            return None;
        }
        let mut q = 1.0f32;
        let rest_start = item.find(';').map_or(item.len(), |i| i + 1);
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v.trim().parse().ok().filter(|q: &f32| (0.0..=1.0).contains(q)).unwrap_or(0.0);
                }
            }
        }
        Some((value, q, &item[rest_start.min(item.len())..]))
    })
}

/// The format for an `Accept` header: OpenMetrics 1.0 if it is acceptable with a weight at
/// least that of the text format, otherwise text 0.0.4 (also when the header is absent).
pub fn negotiate_format(accept: Option<&str>) -> Format {
    let Some(accept) = accept else { return Format::Text };
    let mut best_om = 0.0f32;
    let mut best_text = 0.0f32;
    for (media, q, params) in weighted(accept) {
        let version = params.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("version").then(|| v.trim().trim_matches('"'))
        });
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            // We speak 1.0.0; an explicit other version (e.g. 0.0.1) is not ours.
            if version.is_none_or(|v| v == "1.0.0") {
                best_om = best_om.max(q);
            }
        } else if media.eq_ignore_ascii_case("text/plain") || media == "*/*" || media.eq_ignore_ascii_case("text/*") {
            best_text = best_text.max(q);
        }
    }
    if best_om > 0.0 && best_om >= best_text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// Whether an `Accept-Encoding` header accepts gzip.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|h| {
        weighted(h).any(|(coding, q, _)| q > 0.0 && (coding.eq_ignore_ascii_case("gzip") || coding == "*"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_scrape_header_prefers_openmetrics() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate_format(Some(prom)), Format::OpenMetrics);
        let prom3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
        assert_eq!(negotiate_format(Some(prom3)), Format::OpenMetrics);
    }

    #[test]
    fn text_by_default() {
        assert_eq!(negotiate_format(None), Format::Text);
        assert_eq!(negotiate_format(Some("*/*")), Format::Text);
        assert_eq!(negotiate_format(Some("text/plain;version=0.0.4")), Format::Text);
        assert_eq!(negotiate_format(Some("application/openmetrics-text;version=0.0.1")), Format::Text);
        assert_eq!(negotiate_format(Some("application/openmetrics-text;q=0.2,text/plain")), Format::Text);
        assert_eq!(negotiate_format(Some(";;;,,q=x")), Format::Text);
        assert_eq!(negotiate_format(Some("application/openmetrics-text;q=nonsense")), Format::Text);
    }

    #[test]
    fn gzip() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=1.0, *;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
