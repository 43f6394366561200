//! A request to the live page: any path, any `Host`, a loopback peer or not, GET or HEAD,
//! with remote peers allowed or not. Never a panic, and an independent check of who gets
//! the page: only a `Host` naming an IP address or `localhost` (never a DNS name, the DNS
//! rebinding guard), only a loopback peer naming a loopback address unless remote peers
//! are allowed, and no body for HEAD.

#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use otel_lite::live::{fuzzing, LiveConfig, LiveView};
use otel_lite::Registry;

/// The address `host` names without DNS, by another route than the endpoint's: `http`'s
/// URI grammar splits the port off, std parses the address.
fn named_address(host: &str) -> Option<IpAddr> {
    let authority: http::uri::Authority = host.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let name = authority.host();
    if name.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::from([127, 0, 0, 1]));
    }
    match name.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => name.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

fn views() -> &'static [LiveView; 2] {
    static VIEWS: OnceLock<[LiveView; 2]> = OnceLock::new();
    VIEWS.get_or_init(|| {
        let local = LiveView::new(Registry::new(), LiveConfig::default());
        let remote = LiveView::new(Registry::new(), LiveConfig::default().allow_remote(true));
        local.sample();
        remote.sample();
        [local, remote]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    // Path and Host split at the first newline; no newline: no Host header.
    let (path, host) = match text.split_once('\n') {
        Some((path, host)) => (path, Some(host)),
        None => (&*text, None),
    };
    let (allow_remote, peer_is_loopback, head) = (flags & 1 == 1, flags & 2 == 2, flags & 4 == 4);
    let view = &views()[usize::from(allow_remote)];
    let Some((status, body)) = fuzzing::respond_to(view, path, host, peer_is_loopback, head) else { return };
    let address = host.and_then(named_address);
    assert!(address.is_some(), "page served to Host {host:?}, which names no address without DNS");
    if !allow_remote {
        assert!(peer_is_loopback && address.is_some_and(|a| a.is_loopback()), "page served off loopback: {host:?}");
    }
    assert_eq!(status, 200);
    if head {
        assert_eq!(body, Some(0), "HEAD with a body");
    }
});
