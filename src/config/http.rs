//! `[http]`: what one client may cost the server. baler's webhook endpoint faces the open
//! internet, so every listener has time limits on each part of a request, a cap on the
//! webhook bytes held in memory at once, a cap on connections, and budgets for what refused
//! and unauthenticated requests may store or try.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::FieldError;

/// `[http]` as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A client must send a request's whole head (request line and headers) within this
    /// long, else the connection is closed without an answer. The same timer runs while a
    /// connection waits for its first request and between requests on a kept-alive one, so
    /// it is also the idle limit of a connection.
    pub header_read_timeout_seconds: u64,
    /// A request body must keep arriving: this long without a byte ends the request (408).
    pub body_idle_timeout_seconds: u64,
    /// A request must be read and handled within this long, else it is answered 408. It ends
    /// when the answer starts: streaming a large download may take longer.
    pub request_timeout_seconds: u64,
    /// Webhook bodies held in memory at once, over all requests, in MiB; past it a webhook
    /// is answered 503 with `Retry-After` without reading its body (413 for a declared body
    /// larger than the whole buffer, which could never fit).
    pub webhook_buffer_mib: u64,
    /// Open connections at once; more wait in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// Peers (addresses or CIDR ranges) whose `X-Forwarded-For` names the client: a reverse
    /// proxy in front of baler. Every other peer is the client itself.
    pub trusted_proxies: Vec<String>,
    /// A webhook whose queueing cannot commit within this long is answered 503 (hosts give
    /// up after 10 s), and nothing of it is kept.
    pub commit_timeout_seconds: u64,
    /// Failed admin authentications (Bearer or login) per client address per minute; past
    /// it every attempt from that address is 429 with `Retry-After` until the budget refills.
    pub auth_failures_per_minute: u32,
    /// Refused webhook deliveries kept one row each, per client address per hour; past it
    /// they are only counted per minute.
    pub kept_refusals_per_hour: u32,
    /// Count downloads per file and day (the stats API and the project page's chart).
    pub count_downloads: bool,
    /// Download counts are kept in memory and written to the database this often (and when
    /// the server stops); a process killed with SIGKILL loses at most this long of counts.
    pub downloads_flush_seconds: u64,
    /// Archives of at most 1 MiB are answered from memory, up to this much in all; 0 reads
    /// every download from disk.
    pub files_in_memory_mib: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_seconds: 10,
            body_idle_timeout_seconds: 30,
            request_timeout_seconds: 120,
            webhook_buffer_mib: 64,
            max_connections: 1024,
            trusted_proxies: Vec::new(),
            commit_timeout_seconds: 5,
            auth_failures_per_minute: 10,
            kept_refusals_per_hour: 60,
            count_downloads: true,
            downloads_flush_seconds: 10,
            files_in_memory_mib: 64,
        }
    }
}

/// `[http]` checked, with durations and parsed proxy ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub request_timeout: Duration,
    pub webhook_buffer_bytes: usize,
    pub max_connections: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub commit_timeout: Duration,
    pub auth_failures_per_minute: u32,
    pub kept_refusals_per_hour: u32,
    pub count_downloads: bool,
    pub downloads_flush: Duration,
    pub files_in_memory_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpConfig::default()
            .check()
            .expect("the default [http] settings are valid")
    }
}

impl HttpConfig {
    /// Checks every value; the error names the key (`http.` + field) and says what is wanted.
    pub fn check(self) -> Result<HttpLimits, FieldError> {
        let at_least_one = |key: &str, value: u64| {
            if value == 0 {
                Err(FieldError::new(format!("http.{key}"), "must be at least 1"))
            } else {
                Ok(())
            }
        };
        at_least_one(
            "header_read_timeout_seconds",
            self.header_read_timeout_seconds,
        )?;
        at_least_one("body_idle_timeout_seconds", self.body_idle_timeout_seconds)?;
        at_least_one("request_timeout_seconds", self.request_timeout_seconds)?;
        at_least_one("webhook_buffer_mib", self.webhook_buffer_mib)?;
        at_least_one("max_connections", self.max_connections as u64)?;
        at_least_one("commit_timeout_seconds", self.commit_timeout_seconds)?;
        at_least_one("downloads_flush_seconds", self.downloads_flush_seconds)?;
        at_least_one(
            "auth_failures_per_minute",
            self.auth_failures_per_minute.into(),
        )?;
        if self.webhook_buffer_mib > 64 * 1024 {
            return Err(FieldError::new(
                "http.webhook_buffer_mib",
                "must be at most 65536 (64 GiB)",
            ));
        }
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|text| parse_net(text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|bad| {
                FieldError::new(
                    "http.trusted_proxies",
                    format!("lists addresses or CIDR ranges like \"10.0.0.0/8\"; not {bad:?}"),
                )
            })?;
        Ok(HttpLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout_seconds),
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            webhook_buffer_bytes: (self.webhook_buffer_mib as usize) << 20,
            max_connections: self.max_connections,
            trusted_proxies,
            commit_timeout: Duration::from_secs(self.commit_timeout_seconds),
            auth_failures_per_minute: self.auth_failures_per_minute,
            kept_refusals_per_hour: self.kept_refusals_per_hour,
            count_downloads: self.count_downloads,
            downloads_flush: Duration::from_secs(self.downloads_flush_seconds),
            files_in_memory_bytes: usize::try_from(self.files_in_memory_mib)
                .ok()
                .and_then(|mib| mib.checked_mul(1 << 20))
                .ok_or_else(|| {
                    FieldError::new("http.files_in_memory_mib", "is too large for this machine")
                })?,
        })
    }
}

/// `10.0.0.0/8`, or a single address (`192.0.2.1`, `::1`) as a range of one.
fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| text.to_string())
}

impl HttpLimits {
    /// Whether `peer` is a proxy whose `X-Forwarded-For` is believed.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_ranges_or_single_addresses() {
        let limits = HttpConfig {
            trusted_proxies: vec!["10.0.0.0/8".into(), "::1".into(), "192.0.2.7".into()],
            ..HttpConfig::default()
        }
        .check()
        .unwrap();
        assert!(limits.trusts("10.1.2.3".parse().unwrap()));
        assert!(limits.trusts("::1".parse().unwrap()));
        assert!(limits.trusts("192.0.2.7".parse().unwrap()));
        // An IPv4 peer seen on a dual-stack socket.
        assert!(limits.trusts("::ffff:10.9.9.9".parse().unwrap()));
        assert!(!limits.trusts("192.0.2.8".parse().unwrap()));
        assert!(!limits.trusts("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = HttpConfig {
            trusted_proxies: vec!["10.0.0.0/33".into()],
            ..HttpConfig::default()
        };
        assert_eq!(bad.check().unwrap_err().field, "http.trusted_proxies");
        let zero = HttpConfig {
            body_idle_timeout_seconds: 0,
            ..HttpConfig::default()
        };
        assert_eq!(
            zero.check().unwrap_err().field,
            "http.body_idle_timeout_seconds"
        );
    }
}
