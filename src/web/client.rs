//! Who is asking: the client's address, for budgets and logs. It is the TCP peer, unless the
//! peer is one of `[http] trusted_proxies`; then it is the nearest address in
//! `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends the address it
//! saw, so everything left of that was written by the client and is not believed).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::AppState;
use crate::config::HttpLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(pub IpAddr);

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ClientAddress {
    /// From the peer and the request's headers, as `limits` says whom to believe.
    pub fn resolve(peer: IpAddr, headers: &axum::http::HeaderMap, limits: &HttpLimits) -> Self {
        let peer = peer.to_canonical();
        if !limits.trusts(peer) {
            return ClientAddress(peer);
        }
        // Several X-Forwarded-For headers read as one list, in order.
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(address) if limits.trusts(address) => continue,
                Ok(address) => return ClientAddress(address.to_canonical()),
                // Garbage where an address should be: the proxy that wrote it is the client.
                Err(_) => break,
            }
        }
        ClientAddress(peer)
    }
}

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<ClientAddress, Self::Rejection> {
        // The server always inserts the peer (`web::server`); a router driven without it (a
        // unit test) has no peer, which reads as 0.0.0.0.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientAddress::resolve(peer, &parts.headers, &state.http))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpConfig;
    use axum::http::HeaderMap;

    fn limits(proxies: &[&str]) -> HttpLimits {
        HttpConfig {
            trusted_proxies: proxies.iter().map(|p| p.to_string()).collect(),
            ..HttpConfig::default()
        }
        .check()
        .unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let headers = forwarded(&["198.51.100.9"]);
        // No proxy trusted: the header is the client's own claim.
        assert_eq!(
            ClientAddress::resolve(ip("203.0.113.5"), &headers, &limits(&[])).0,
            ip("203.0.113.5")
        );
        // From the trusted proxy: the client it saw.
        assert_eq!(
            ClientAddress::resolve(ip("10.0.0.2"), &headers, &limits(&["10.0.0.0/8"])).0,
            ip("198.51.100.9")
        );
        // A forged entry left of the proxy's own is not believed; two proxies are skipped.
        let chain = forwarded(&["1.2.3.4, 198.51.100.9", "10.0.0.3"]);
        assert_eq!(
            ClientAddress::resolve(ip("10.0.0.2"), &chain, &limits(&["10.0.0.0/8"])).0,
            ip("198.51.100.9")
        );
        // Garbage: the proxy itself.
        let junk = forwarded(&["not-an-address"]);
        assert_eq!(
            ClientAddress::resolve(ip("10.0.0.2"), &junk, &limits(&["10.0.0.0/8"])).0,
            ip("10.0.0.2")
        );
    }
}
