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

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use entities::auth_failure;
use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use tokio::sync::{OwnedMutexGuard, mpsc};

use crate::db::WriteGate;

/// Past this many addresses the in-memory maps are trimmed of entries that no longer matter
/// (full budgets, refusals that ended), so that many addresses cannot grow them for ever
/// (see [`TrimPoint`]).
const TRIM_AT: usize = 10_000;
/// Addresses whose failures wait to be written; past it (the database is stuck and very many
/// addresses fail) new addresses go unrecorded, which the writer logs. The limit holds anyway.
const MAX_PENDING: usize = 10_000;
/// The writer waits this long after each write, so that a flood of refused attempts costs at
/// most one upsert per address per interval, not one per attempt.
const WRITE_SPACING: Duration = Duration::from_millis(250);

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

type FailureLimiter<C> =
    RateLimiter<AddressKey, DefaultKeyedStateStore<AddressKey>, C, StateInformationMiddleware>;

/// The policy, on any clock (tests drive a fake one): failures spend cells of a governor
/// limiter; an address is refused while a failure would not fit.
///
/// governor can only answer "would one more fit?" by spending the cell when it does, and a
/// success must spend nothing; so the answer is worked out when a failure is spent instead:
/// if it took the last whole cell, the address is refused until a cell refills, and that
/// instant is remembered per address ("refused until"). governor tells the exact instant only
/// of a refused cell, so after the last cell it is taken as one refill interval later, which
/// is when a cell is back at the latest: a refusal may last up to one interval (60 s / the
/// budget) longer than the bucket strictly needs, never shorter.
struct Budget<C: Clock> {
    failures: FailureLimiter<C>,
    /// One cell's refill time.
    refill: Duration,
    refused_until: Mutex<HashMap<AddressKey, C::Instant>>,
    failures_trim: TrimPoint,
    refused_trim: TrimPoint,
}

impl<C: Clock> Budget<C> {
    fn new(per_minute: NonZeroU32, clock: C) -> Budget<C> {
        let quota = Quota::per_minute(per_minute);
        Budget {
            failures: FailureLimiter::new(quota, DefaultKeyedStateStore::default(), clock),
            refill: quota.replenish_interval(),
            refused_until: Mutex::default(),
            failures_trim: TrimPoint::default(),
            refused_trim: TrimPoint::default(),
        }
    }

    /// How long `key` is still refused, if it is; spends nothing.
    fn refused(&self, key: AddressKey) -> Option<Duration> {
        let now = self.failures.clock().now();
        let mut refused = lock(&self.refused_until);
        match refused.get(&key) {
            Some(&until) if until > now => Some(until.duration_since(now).into()),
            Some(_) => {
                refused.remove(&key);
                None
            }
            None => None,
        }
    }

    /// One failure from `key`.
    fn spend(&self, key: AddressKey) {
        let now = self.failures.clock().now();
        let until = match self.failures.check_key(&key) {
            Ok(state) if state.remaining_burst_capacity() == 0 => now + Nanos::from(self.refill),
            Ok(_) => return,
            // The failure did not fit: only if attempts raced past `refused` (turns prevent
            // that); governor says when one fits again.
            Err(not_until) => not_until.earliest_possible(),
        };
        {
            let mut refused = lock(&self.refused_until);
            let entry = refused.entry(key).or_insert(until);
            *entry = (*entry).max(until);
            if self.refused_trim.due(refused.len()) {
                refused.retain(|_, until| *until > now);
                self.refused_trim.trimmed(refused.len());
            }
        }
        // Addresses whose bucket is full again are no different from new ones.
        if self.failures_trim.due(self.failures.len()) {
            self.failures.retain_recent();
            self.failures_trim.trimmed(self.failures.len());
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

/// Failures not yet written, per address.
#[derive(Default)]
struct Pending {
    rows: HashMap<AddressKey, PendingRow>,
    /// Failures not recorded because too many addresses were waiting.
    dropped: u64,
}

struct PendingRow {
    count: i64,
    first_at: i64,
    last_at: i64,
    last_kind: FailureKind,
}

/// Writes `auth_failures` off the request path: a failure is answered at once, a slow or
/// failing database never turns a 401 into a 500 or holds it, and failures that arrive while
/// a write is under way are summed into one upsert per address.
struct FailureLog {
    pending: Arc<Mutex<Pending>>,
    /// Holds at most one wake-up: the writer takes everything pending when it wakes.
    wake: mpsc::Sender<()>,
}

impl FailureLog {
    fn start(db: DatabaseConnection, gate: WriteGate) -> FailureLog {
        let (wake, mut woken) = mpsc::channel::<()>(1);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let writing = pending.clone();
        tokio::spawn(async move {
            while woken.recv().await.is_some() {
                let batch = std::mem::take(&mut *lock(&writing));
                if batch.dropped > 0 {
                    tracing::warn!(
                        attempts = batch.dropped,
                        "failed admin authentications not recorded: too many addresses waiting"
                    );
                }
                {
                    let _turn = gate.enter().await;
                    for (key, row) in batch.rows {
                        if let Err(e) = upsert(&db, key, &row).await {
                            tracing::warn!(
                                error = %e, address = %key, count = row.count,
                                "could not record failed admin authentications"
                            );
                        }
                    }
                }
                tokio::time::sleep(WRITE_SPACING).await;
            }
        });
        FailureLog { pending, wake }
    }

    fn record(&self, key: AddressKey, kind: FailureKind) {
        let now = chrono::Utc::now().timestamp_millis();
        {
            let mut pending = lock(&self.pending);
            if pending.rows.len() >= MAX_PENDING && !pending.rows.contains_key(&key) {
                pending.dropped += 1;
                return;
            }
            let row = pending.rows.entry(key).or_insert(PendingRow {
                count: 0,
                first_at: now,
                last_at: now,
                last_kind: kind,
            });
            row.count += 1;
            row.last_at = now;
            row.last_kind = kind;
        }
        // Full: a wake-up is pending already, and it will take this row too.
        let _ = self.wake.try_send(());
    }
}

/// One statement: a new address gets its row; a known one has its count raised and its
/// last time and kind replaced (`first_at` stays). Works alike on SQLite and PostgreSQL.
async fn upsert(db: &DatabaseConnection, key: AddressKey, row: &PendingRow) -> Result<(), DbErr> {
    use auth_failure::{Column, Entity};
    use sea_orm::sea_query::ExprTrait;
    Entity::insert(auth_failure::ActiveModel {
        client_address: Set(key.to_string()),
        count: Set(row.count),
        first_at: Set(row.first_at),
        last_at: Set(row.last_at),
        last_kind: Set(row.last_kind.as_str().to_string()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(Column::ClientAddress)
            .value(
                Column::Count,
                Expr::col((Entity, Column::Count)).add(row.count),
            )
            .update_columns([Column::LastAt, Column::LastKind])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// One row of the admin page's "Failed sign-ins".
#[derive(Debug, Clone, Serialize)]
pub struct AuthFailureView {
    /// An IPv4 address or an IPv6 /64.
    pub address: String,
    pub count: i64,
    pub first_at: String,
    pub last_at: String,
    /// `bearer` or `login`: where the latest attempt was made.
    pub last_kind: String,
}

/// The `limit` addresses that failed most recently, newest first.
pub async fn recent_failures(
    db: &DatabaseConnection,
    limit: u64,
) -> Result<Vec<AuthFailureView>, DbErr> {
    Ok(auth_failure::Entity::find()
        .order_by_desc(auth_failure::Column::LastAt)
        .order_by_desc(auth_failure::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|row| AuthFailureView {
            address: row.client_address,
            count: row.count,
            first_at: super::rfc3339(row.first_at),
            last_at: super::rfc3339(row.last_at),
            last_kind: row.last_kind,
        })
        .collect())
}

/// How long an address's failures are kept after its last one.
pub const RETENTION_DAYS: i64 = 30;

/// Removes addresses whose last failure is older than [`RETENTION_DAYS`]; returns how many.
pub async fn prune(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let cutoff = chrono::Utc::now().timestamp_millis() - RETENTION_DAYS * 24 * 3600 * 1000;
    let result = auth_failure::Entity::delete_many()
        .filter(auth_failure::Column::LastAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

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

    #[test]
    fn the_last_failure_refuses_the_address_until_a_cell_refills() {
        let clock = FakeRelativeClock::default();
        let budget = Budget::new(NonZeroU32::new(10).unwrap(), clock.clone());
        let guesser = address("192.0.2.1");
        for _ in 0..9 {
            assert_eq!(budget.refused(guesser), None);
            budget.spend(guesser);
        }
        assert_eq!(budget.refused(guesser), None);
        // The tenth failure spends the last cell: the next attempt is refused, whatever it
        // holds, for one refill interval (6 s at 10 a minute).
        budget.spend(guesser);
        assert_eq!(budget.refused(guesser), Some(Duration::from_secs(6)));
        // Asking does not spend, and another address has its own budget.
        clock.advance(Duration::from_secs(5));
        assert_eq!(budget.refused(guesser), Some(Duration::from_secs(1)));
        assert_eq!(budget.refused(address("192.0.2.2")), None);
        // One cell is back: one more failure fits, and refuses again.
        clock.advance(Duration::from_secs(1));
        assert_eq!(budget.refused(guesser), None);
        budget.spend(guesser);
        assert_eq!(budget.refused(guesser), Some(Duration::from_secs(6)));
        // A quiet minute refills the whole budget.
        clock.advance(Duration::from_secs(60));
        for _ in 0..9 {
            budget.spend(guesser);
            assert_eq!(budget.refused(guesser), None);
        }
        budget.spend(guesser);
        assert!(budget.refused(guesser).is_some());
    }

    #[test]
    fn a_budget_of_one_refuses_after_each_failure() {
        let clock = FakeRelativeClock::default();
        let budget = Budget::new(NonZeroU32::new(1).unwrap(), clock.clone());
        let guesser = address("2001:db8::1");
        budget.spend(guesser);
        assert_eq!(budget.refused(guesser), Some(Duration::from_secs(60)));
        clock.advance(Duration::from_secs(60));
        assert_eq!(budget.refused(guesser), None);
    }

    #[test]
    fn a_failure_past_the_budget_is_refused_until_governor_says() {
        let clock = FakeRelativeClock::default();
        let budget = Budget::new(NonZeroU32::new(2).unwrap(), clock.clone());
        let guesser = address("192.0.2.9");
        budget.spend(guesser);
        budget.spend(guesser);
        // A third failure counted without a check first (it cannot happen through
        // `AuthThrottle`, whose turns order the attempts): governor refuses its cell and
        // names when one fits, 30 s on; the refusal already lasts that long.
        budget.spend(guesser);
        assert_eq!(budget.refused(guesser), Some(Duration::from_secs(30)));
    }

    #[test]
    fn many_addresses_do_not_grow_the_maps_for_ever() {
        let clock = FakeRelativeClock::default();
        let budget = Budget::new(NonZeroU32::new(1).unwrap(), clock.clone());
        let spend_from = |first: u32| {
            for n in first..first + TRIM_AT as u32 {
                budget.spend(AddressKey::of(IpAddr::from(n.to_be_bytes())));
            }
        };
        // As many live addresses as the trim point: all are kept.
        spend_from(0);
        assert_eq!(lock(&budget.refused_until).len(), TRIM_AT);
        assert_eq!(budget.failures.len(), TRIM_AT);
        // Two minutes on, those refusals have ended and those buckets have been full for a
        // while (governor keeps a key until a whole interval past that). As many new
        // addresses again: once the maps have doubled, the old entries go.
        clock.advance(Duration::from_secs(121));
        spend_from(1 << 24);
        assert_eq!(lock(&budget.refused_until).len(), TRIM_AT);
        assert_eq!(budget.failures.len(), TRIM_AT);
        assert_eq!(
            budget.refused(AddressKey::of(IpAddr::from([0, 0, 0, 1]))),
            None
        );
        assert!(
            budget
                .refused(AddressKey::of(IpAddr::from([1, 0, 0, 1])))
                .is_some()
        );
    }
}
