//! The live page's paths on the metrics endpoint: `/live` (the page), `/live/api/overview`
//! and `/live/api/trace/{32 hex digits}`.
//!
//! Read-only and bounded: GET and HEAD only (the endpoint checks), no query string read, a
//! fixed path grammar, documents capped at [`MAX_DOCUMENT_BYTES`](super::view::MAX_DOCUMENT_BYTES).
//! The page is for the person at the machine: a peer that is not on loopback gets the
//! endpoint's ordinary 404 unless [`LiveConfig::allow_remote`](super::LiveConfig) is set,
//! and a `Host` that is not an IP address or `localhost` gets it too, so that a web page
//! elsewhere cannot read the page through DNS rebinding.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use otel_lite_core::trace::TraceId;

use super::view::LiveView;

/// The page: one file, its script and style marked with `__NONCE__`, replaced per response.
const PAGE: &str = include_str!("page.html");
const NONCE_MARK: &str = "__NONCE__";
const TRACE_PREFIX: &str = "/live/api/trace/";

/// What one request to the endpoint asks of the live page.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LiveRequest<'a> {
    /// The URI's path.
    pub(crate) path: &'a str,
    /// The `Host` header, if readable.
    pub(crate) host: Option<&'a str>,
    /// Whether the peer's address is a loopback address.
    pub(crate) peer_is_loopback: bool,
    /// A HEAD request: the headers of the GET response, no body.
    pub(crate) head: bool,
}

/// Whether `path` is one of the live page's (so that the endpoint routes it here).
pub(crate) fn is_live_path(path: &str) -> bool {
    path == "/live" || path.starts_with("/live/")
}

/// The response to a live path, or `None` for the endpoint's ordinary 404: an unknown
/// path, a peer or `Host` the page is not for, or a trace the reservoir does not hold.
pub(crate) fn respond(view: &LiveView, request: LiveRequest<'_>) -> Option<Response<Full<Bytes>>> {
    if !admits(view, &request) {
        return None;
    }
    let response = match request.path {
        "/live" | "/live/" => page(),
        "/live/api/overview" => json(view.overview_json()),
        path => {
            let id = parse_trace_id(path.strip_prefix(TRACE_PREFIX)?)?;
            json(view.trace_json(id)?)
        }
    };
    Some(if request.head { without_body(response) } else { response })
}

/// Whether the page is for this request's peer and `Host` (checked before anything else,
/// the method included, so that a peer it is not for cannot tell the page exists).
///
/// By default, only a loopback peer naming a loopback address or `localhost`: a proxy or
/// sidecar on this machine forwarding other machines' requests (they then arrive from
/// loopback) names the pod's address or a service name and is refused. With
/// `allow_remote`, any peer, naming any IP address or `localhost`: never a DNS name, which
/// a page elsewhere could point at this endpoint (DNS rebinding).
pub(crate) fn admits(view: &LiveView, request: &LiveRequest<'_>) -> bool {
    let Some(host) = request.host.and_then(host_address) else { return false };
    if view.config().allow_remote {
        return true;
    }
    request.peer_is_loopback && host.is_loopback()
}

/// The address a `Host` header names without DNS: an IP literal (v4, or v6 in brackets)
/// or `localhost` (as 127.0.0.1), with an optional port; `None` for anything else.
fn host_address(host: &str) -> Option<std::net::IpAddr> {
    let name = match host.strip_prefix('[') {
        // `[::1]:9464`: the address is what the brackets hold.
        Some(rest) => {
            let (v6, port) = rest.split_once(']')?;
            if !(port.is_empty() || port.strip_prefix(':').is_some_and(valid_port)) {
                return None;
            }
            return v6.parse::<std::net::Ipv6Addr>().ok().map(std::net::IpAddr::V6);
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return None,
            None => host,
        },
    };
    if name.eq_ignore_ascii_case("localhost") {
        return Some(std::net::Ipv4Addr::LOCALHOST.into());
    }
    name.parse::<std::net::Ipv4Addr>().ok().map(std::net::IpAddr::V4)
}

/// Whether `host` names an address without DNS (see [`host_address`]).
#[cfg(test)]
fn host_is_local_name(host: &str) -> bool {
    host_address(host).is_some()
}

/// Decimal digits only (`u16`'s parser would also take a sign) naming a port number.
fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
}

/// Exactly 32 lowercase hex digits, not all zero; anything else is no trace. The length
/// is checked first, so a long path is never copied into the parse error.
fn parse_trace_id(s: &str) -> Option<TraceId> {
    (s.len() == 32).then(|| TraceId::from_hex(s).ok()).flatten()
}

fn page() -> Response<Full<Bytes>> {
    // 128 random bits, fresh per response (a trace id is exactly that, from the SDK's
    // generator).
    let nonce = TraceId::random().to_string();
    let body = PAGE.replace(NONCE_MARK, &nonce);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
         img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert("content-security-policy", csp);
    }
    common_headers(&mut response);
    response
}

fn json(body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    common_headers(&mut response);
    response
}

fn common_headers(response: &mut Response<Full<Bytes>>) {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
}

fn without_body(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    *response.body_mut() = Full::new(Bytes::new());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &'static str, peer_is_loopback: bool, host: Option<&'static str>) -> LiveRequest<'static> {
        LiveRequest { path, host, peer_is_loopback, head: false }
    }

    /// The page is for the machine's own user: a remote peer gets the endpoint's 404 (the
    /// caller's `None`), unless the configuration opens it to every peer.
    #[test]
    fn remote_peers_get_nothing_unless_allowed() {
        let registry = otel_lite_core::Registry::new();
        let closed = LiveView::new(registry.clone(), super::super::LiveConfig::default());
        let open = LiveView::new(registry, super::super::LiveConfig::default().allow_remote(true));
        for path in ["/live", "/live/api/overview"] {
            assert!(respond(&closed, request(path, true, Some("127.0.0.1:9464"))).is_some(), "{path}");
            assert!(respond(&closed, request(path, true, Some("[::1]:9464"))).is_some(), "{path}");
            assert!(respond(&closed, request(path, false, Some("127.0.0.1:9464"))).is_none(), "{path}");
            assert!(respond(&closed, request(path, true, None)).is_none(), "{path}: no Host");
            // A sidecar forwarding other machines' requests from loopback names the pod.
            assert!(respond(&closed, request(path, true, Some("10.0.0.7:9464"))).is_none(), "{path}");
            assert!(respond(&closed, request(path, true, Some("0.0.0.0"))).is_none(), "{path}");
            assert!(respond(&open, request(path, false, Some("10.0.0.7:9464"))).is_some(), "{path}");
            // Never a DNS name, even when open to every peer (DNS rebinding).
            assert!(respond(&open, request(path, false, Some("service.prod:9464"))).is_none(), "{path}");
        }
        let head = LiveRequest { head: true, ..request("/live", true, Some("localhost")) };
        let response = respond(&closed, head).expect("served");
        assert_eq!(hyper::body::Body::size_hint(response.body()).exact(), Some(0));
    }

    /// The page builds its DOM from text and checked attributes only, loads nothing from
    /// elsewhere, and stays small; its policy allows exactly its one script and one style.
    #[test]
    fn the_page_is_small_self_contained_and_never_parses_strings_as_html() {
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "http://",
            "https://",
        ] {
            assert!(!PAGE.contains(forbidden), "the page uses {forbidden}");
        }
        assert!(
            !PAGE.contains(" style=") && !PAGE.contains(" onclick="),
            "inline styles and handlers break the policy"
        );
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        assert_eq!(PAGE.matches(NONCE_MARK).count(), 2, "the script's and the style's nonce");
        assert!(PAGE.contains(r#"<link rel="icon" href="data:,">"#), "no favicon request");
        assert!(PAGE.len() < 32 * 1024, "{} bytes", PAGE.len());
    }

    /// The request parts that come from outside (path and `Host`), mutated at random from
    /// valid ones: nothing panics, a trace id is accepted only in its one canonical
    /// spelling, and an accepted `Host` has only the characters a host and port may have.
    #[test]
    fn random_paths_and_hosts_are_handled() {
        let view = LiveView::new(otel_lite_core::Registry::new(), super::super::LiveConfig::default());
        let seeds = [
            "/live/api/trace/4bf92f3577b34da6a3ce929d0e0e4736",
            "/live/api/overview",
            "/live",
            "[::1]:9464",
            "localhost:80",
            "127.0.0.1",
        ];
        let alphabet = b"/:[]%.0123456789abcdefABCDEFlivehostapirc \x00\xff\xc3\xa9";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = seeds[(next() % seeds.len() as u64) as usize].as_bytes().to_vec();
            for _ in 0..(next() % 4) {
                let at = (next() % (bytes.len() as u64 + 1)) as usize;
                let byte = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 if at < bytes.len() => drop(bytes.remove(at)),
                    _ => bytes.insert(at, byte),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Some(id) = text.strip_prefix(TRACE_PREFIX).and_then(parse_trace_id) {
                assert_eq!(format!("{TRACE_PREFIX}{id}"), text, "one spelling per id");
            }
            if host_is_local_name(&text) {
                assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b":.[]".contains(&b)), "{text:?}");
            }
            let _ = respond(&view, request_owned(&text));
        }
    }

    fn request_owned(path: &str) -> LiveRequest<'_> {
        LiveRequest { path, host: Some(path), peer_is_loopback: true, head: false }
    }

    #[test]
    fn hosts_that_name_this_machine_without_dns() {
        for host in ["localhost", "LOCALHOST:9464", "127.0.0.1", "127.0.0.1:9464", "[::1]", "[::1]:9464", "10.0.0.7:80"]
        {
            assert!(host_is_local_name(host), "{host}");
        }
        for host in [
            "",
            "example.com",
            "localhost.evil.com",
            "127.0.0.1.nip.io:80",
            "[::1",
            "[::1]x",
            "localhost:x",
            "a:b:c",
            "[::1]::80",
            "[::1]:",
            "127.0.0.1:+80",
            "localhost:",
        ] {
            assert!(!host_is_local_name(host), "{host}");
        }
    }

    #[test]
    fn trace_ids_are_32_lowercase_hex_digits_and_not_zero() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(parse_trace_id(id).map(|t| t.to_string()), Some(id.to_owned()));
        for bad in [
            "",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            &id[1..],
            &format!("{id}0"),
            &"0".repeat(32),
            "+bf92f3577b34da6a3ce929d0e0e4736",
        ] {
            assert_eq!(parse_trace_id(bad), None, "{bad}");
        }
    }
}
