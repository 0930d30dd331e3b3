//! Guessing admin tokens: failed authentications (a wrong `Authorization: Bearer` token, a
//! wrong token in the login form) are limited per client address, `[http]
//! auth_failures_per_minute` of them, refilled evenly over the minute (a governor GCRA limiter
//! that only failures spend). Once an address has spent its budget, EVERY attempt from it, the
//! right token as well, is refused with a wait and never checked, until a failure fits again:
//! answering the right token while refusing wrong ones would still tell a limited guesser
//! which guess was right. Successful attempts never spend the budget, so a CI job with a good
//! token is never limited. Every failure and every refused attempt is recorded in
//! `auth_failures`, one row per address with a count and the first and last time.
//!
//! The limit is this process's: several web processes each allow the budget.
//!
//! The pieces: [`AuthThrottle`] orders each address's attempts and answers them; its budget
//! (`budget.rs`) is the policy, on any clock; its failure log (`failures.rs`) writes and reads
//! `auth_failures`.

mod budget;
mod failures;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use governor::clock::DefaultClock;
use sea_orm::DatabaseConnection;
use tokio::sync::OwnedMutexGuard;

use crate::db::WriteGate;
use budget::Budget;
use failures::FailureLog;

pub use failures::{AuthFailureView, RETENTION_DAYS, prune, recent_failures};

/// Past this many addresses the in-memory maps are trimmed of entries that no longer matter
/// (full budgets, refusals that ended), so that many addresses cannot grow them for ever
/// (see [`TrimPoint`]).
const TRIM_AT: usize = 10_000;

/// Whose budget an attempt spends: an IPv4 address, or an IPv6 /64. One host (or one
/// customer's network) is usually given a whole /64 and may use any address in it, so a
/// budget per IPv6 address would limit nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    pub fn of(address: IpAddr) -> AddressKey {
        match address.to_canonical() {
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !(u128::from(u64::MAX));
                AddressKey(IpAddr::V6(Ipv6Addr::from(network)))
            }
            v4 => AddressKey(v4),
        }
    }

    /// The address itself (IPv4), or the /64's first address (IPv6).
    pub fn network(self) -> IpAddr {
        self.0
    }
}

/// `192.0.2.7`, or `2001:db8:1:2::/64`: as the admin page and `auth_failures` name it.
impl std::fmt::Display for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Where a token was tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// `Authorization: Bearer` on the API.
    Bearer,
    /// The admin page's login form.
    Login,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Bearer => "bearer",
            FailureKind::Login => "login",
        }
    }
}

/// The address is over its budget: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for `Retry-After`, rounded up (a client that waits this long is let
    /// through) and at least 1.
    pub fn seconds(self) -> u64 {
        let whole = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        whole.max(1)
    }
}

/// Limits failed admin authentications per client address, and records them; cheap to clone.
#[derive(Clone)]
pub struct AuthThrottle {
    inner: Arc<Inner>,
}

struct Inner {
    budget: Budget<DefaultClock>,
    /// Attempts from one address are checked one at a time (each holds its address's turn
    /// from before the refusal check until its outcome is counted), so every check sees the
    /// outcome of every earlier attempt. Without it, many attempts sent at once would all
    /// pass the check before the first failure was counted, and all be tried.
    turns: Mutex<HashMap<AddressKey, Arc<tokio::sync::Mutex<()>>>>,
    turns_trim: TrimPoint,
    log: FailureLog,
}

impl AuthThrottle {
    /// `per_minute` failures per address; failures are written to `auth_failures` by a task
    /// of their own, which ends when the last clone is dropped.
    pub fn new(db: DatabaseConnection, gate: WriteGate, per_minute: NonZeroU32) -> AuthThrottle {
        AuthThrottle {
            inner: Arc::new(Inner {
                budget: Budget::new(per_minute, DefaultClock::default()),
                turns: Mutex::default(),
                turns_trim: TrimPoint::default(),
                log: FailureLog::start(db, gate),
            }),
        }
    }

    /// Before checking a token that `address` presents (`kind` says where): the attempt, to
    /// report a failure on, or how long `address` must wait, in which case the token must
    /// not be checked at all. A refused attempt is recorded like a failure.
    pub async fn check(&self, address: IpAddr, kind: FailureKind) -> Result<Attempt, RetryAfter> {
        let key = AddressKey::of(address);
        let turn = self.inner.turn(key).lock_owned().await;
        let attempt = Attempt {
            throttle: self.clone(),
            key,
            kind,
            turn: Some(turn),
        };
        match self.inner.budget.refused(key) {
            None => Ok(attempt),
            Some(wait) => {
                drop(attempt);
                self.inner.log.record(key, kind);
                Err(RetryAfter(wait))
            }
        }
    }
}

impl Inner {
    /// `key`'s turn, made if nobody holds or waits for it.
    fn turn(&self, key: AddressKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = lock(&self.turns);
        // Turns are removed when their last holder is done; one whose waiter went away (the
        // request was dropped while waiting) is left behind, and goes here.
        if self.turns_trim.due(turns.len()) {
            turns.retain(|_, turn| Arc::strong_count(turn) > 1);
            self.turns_trim.trimmed(turns.len());
        }
        turns.entry(key).or_default().clone()
    }

    /// Ends a holder's turn, and forgets the turn if nobody else holds or waits for it.
    /// Anyone else gets a turn under the map's lock, so the count cannot rise meanwhile.
    fn release(&self, key: AddressKey, turn: OwnedMutexGuard<()>) {
        drop(turn);
        let mut turns = lock(&self.turns);
        if turns
            .get(&key)
            .is_some_and(|turn| Arc::strong_count(turn) == 1)
        {
            turns.remove(&key);
        }
    }
}

/// An attempt let through to have its token checked. Report a wrong token with
/// [`Attempt::failed`]; a right one is simply dropped (it spends nothing).
pub struct Attempt {
    throttle: AuthThrottle,
    key: AddressKey,
    kind: FailureKind,
    turn: Option<OwnedMutexGuard<()>>,
}

impl Attempt {
    /// The token was wrong: spends one failure of the address's budget and records it.
    pub fn failed(mut self) {
        let inner = &self.throttle.inner;
        inner.budget.spend(self.key);
        // Once per refusal, since refused attempts never get here.
        if let Some(wait) = inner.budget.refused(self.key) {
            tracing::warn!(
                address = %self.key,
                seconds = RetryAfter(wait).seconds(),
                "too many failed admin authentications: refusing the address for a while"
            );
        }
        if let Some(turn) = self.turn.take() {
            inner.release(self.key, turn);
        }
        inner.log.record(self.key, self.kind);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(turn) = self.turn.take() {
            self.throttle.inner.release(self.key, turn);
        }
    }
}

/// When a map is next trimmed: at [`TRIM_AT`] entries, and after a trim only once the map has
/// doubled, so that a map full of live entries is not scanned on every insert (the cost of
/// trimming stays proportional to the inserts) and holds at most twice its live entries.
struct TrimPoint(AtomicUsize);

impl Default for TrimPoint {
    fn default() -> TrimPoint {
        TrimPoint(AtomicUsize::new(TRIM_AT))
    }
}

impl TrimPoint {
    fn due(&self, len: usize) -> bool {
        len >= self.0.load(Ordering::Relaxed)
    }

    fn trimmed(&self, len: usize) {
        self.0
            .store(TRIM_AT.max(len.saturating_mul(2)), Ordering::Relaxed);
    }
}

/// A poisoned lock (a panic while holding it) still guards consistent maps: every change
/// under these locks is a single insert, remove or retain.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> AddressKey {
        AddressKey::of(text.parse().unwrap())
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_ipv4_stands_alone() {
        assert_eq!(address("2001:db8:1:2::1"), address("2001:db8:1:2:ffff::9"));
        assert_ne!(address("2001:db8:1:2::1"), address("2001:db8:1:3::1"));
        assert_eq!(
            address("2001:db8:1:2:aa::1").to_string(),
            "2001:db8:1:2::/64"
        );
        assert_ne!(address("192.0.2.1"), address("192.0.2.2"));
        assert_eq!(address("192.0.2.1").to_string(), "192.0.2.1");
        // An IPv4 client seen on a dual-stack socket is that IPv4 address.
        assert_eq!(address("::ffff:192.0.2.1"), address("192.0.2.1"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(RetryAfter(Duration::from_millis(1)).seconds(), 1);
        assert_eq!(RetryAfter(Duration::ZERO).seconds(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(5_001)).seconds(), 6);
        assert_eq!(RetryAfter(Duration::from_secs(6)).seconds(), 6);
    }
}
