//! The SSRF guard: a notification may not reach loopback, private, link-local (cloud metadata
//! at 169.254.169.254 among them), unique-local or otherwise non-public addresses unless its
//! subscriber allows private networks. The check runs on the addresses a connection is about
//! to use, inside the HTTP client's resolver, so a name that resolves to a public address when
//! the subscriber is added and to a private one later (DNS rebinding) is still refused. A URL
//! that names an address directly never reaches a resolver, so [`refused_literal`] checks it
//! before the request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why `ip` may not be reached without `allow_private_network`, if it may not.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => refusal_v4(v4),
            None => refusal_v6(v6),
        },
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address (cloud metadata lives there)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("not a unicast address")
    } else {
        None
    }
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if ip.is_unique_local() {
        Some("a unique-local (private) address")
    } else if ip.is_unicast_link_local() {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("not a unicast address")
    } else {
        None
    }
}

/// The refusal for a URL whose host is an address, which no resolver sees.
pub fn refused_literal(url: &reqwest::Url) -> Option<String> {
    let ip = match url.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    refusal(ip).map(|why| format!("refused: {ip} is {why} (set allow_private_network = true)"))
}

/// The system resolver, with every address the guard refuses taken out; a name left with
/// none fails, naming what it resolved to.
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|addr| refusal(addr.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                let why = found
                    .first()
                    .and_then(|addr| refusal(addr.ip()).map(|why| (addr.ip(), why)));
                let message = match why {
                    Some((ip, why)) => format!(
                        "refused: {host} resolves to {ip}, {why} (set allow_private_network = true)"
                    ),
                    None => format!("{host} resolves to no address"),
                };
                return Err(message.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_the_public_internet() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(refusal(refused.parse().unwrap()).is_some(), "{refused}");
        }
        for allowed in ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"] {
            assert_eq!(refusal(allowed.parse().unwrap()), None, "{allowed}");
        }
    }

    #[test]
    fn checks_urls_that_name_an_address() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(refused_literal(&url("http://127.0.0.1:9/hook")).is_some());
        assert!(refused_literal(&url("http://[::1]/hook")).is_some());
        assert!(refused_literal(&url("http://169.254.169.254/latest")).is_some());
        assert_eq!(refused_literal(&url("https://8.8.8.8/")), None);
        assert_eq!(refused_literal(&url("https://example.org/")), None);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_when_connecting() {
        let err = match GuardedResolver.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("refused: localhost resolves to"), "{err}");
    }
}
