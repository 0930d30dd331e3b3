//! The throttle's policy: how many failures an address may spend, and for how long it is
//! refused once it has spent them.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::{AddressKey, TrimPoint, lock};

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
pub(super) struct Budget<C: Clock> {
    failures: FailureLimiter<C>,
    /// One cell's refill time.
    refill: Duration,
    refused_until: Mutex<HashMap<AddressKey, C::Instant>>,
    failures_trim: TrimPoint,
    refused_trim: TrimPoint,
}

impl<C: Clock> Budget<C> {
    pub(super) fn new(per_minute: NonZeroU32, clock: C) -> Budget<C> {
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
    pub(super) fn refused(&self, key: AddressKey) -> Option<Duration> {
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
    pub(super) fn spend(&self, key: AddressKey) {
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use governor::clock::FakeRelativeClock;

    use super::super::TRIM_AT;
    use super::*;

    fn address(text: &str) -> AddressKey {
        AddressKey::of(text.parse().unwrap())
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
