use bounded_ratelimit::{Quota, QuotaError};

/// What a fleet limiter does when Redis cannot be asked (refused connection, lost connection, no
/// answer within the call timeout).
///
/// | policy | while Redis is down | costs |
/// | --- | --- | --- |
/// | [`Refuse`](OnUnavailable::Refuse) (the default) | every call fails with `Unavailable` | an outage of Redis is an outage of the calls it guards |
/// | [`Allow`](OnUnavailable::Allow) | every call is granted at once | the partner sees no limit at all until Redis is back |
/// | [`Local`](OnUnavailable::Local) | each replica limits itself to its own local quota | the fleet's total is the sum of the local quotas, as exact as the share you give |
///
/// Each call asks Redis first, so the limiter is back on the shared bucket with the first call after
/// Redis answers again (the connection reconnects by itself). Units granted under `Allow` or `Local`
/// are not known to Redis: the shared bucket starts where it was left, not charged for them.
///
/// # Examples
///
/// ```
/// use bounded_ratelimit::Quota;
/// use bounded_ratelimit_redis::OnUnavailable;
///
/// // Twelve replicas share 60 a second: each falls back to 5 a second on its own.
/// let policy = OnUnavailable::share_of(Quota::per_second(60), 12).unwrap();
/// assert!(matches!(policy, OnUnavailable::Local(q) if q == Quota::per_second(5)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnUnavailable {
    /// Fail closed: refuse with [`Unavailable`](crate::Unavailable). Nothing is ever over-granted.
    #[default]
    Refuse,
    /// Fail open: grant at once, unlimited.
    Allow,
    /// Fall back to a local limiter with this quota (one per replica, built with the fleet limiter).
    Local(Quota),
}

impl OnUnavailable {
    /// A local fallback of `1 / replicas` of `quota`: the count divided by the number of replicas
    /// (rounded down), the burst likewise (at least 1).
    ///
    /// # Errors
    ///
    /// [`QuotaError::ZeroRate`] when the share rounds to nothing (fewer units than replicas), and for
    /// zero replicas: give a longer period or a local quota of your own.
    ///
    /// # Examples
    ///
    /// ```
    /// # use bounded_ratelimit::{Quota, QuotaError};
    /// # use bounded_ratelimit_redis::OnUnavailable;
    /// assert_eq!(OnUnavailable::share_of(Quota::per_second(3), 4), Err(QuotaError::ZeroRate));
    /// assert_eq!(OnUnavailable::share_of(Quota::per_second(3), 0), Err(QuotaError::ZeroRate));
    /// let local = OnUnavailable::share_of(Quota::per_second(100).burst(10), 4).unwrap();
    /// assert_eq!(local, OnUnavailable::Local(Quota::per_second(25).burst(2)));
    /// ```
    pub fn share_of(quota: Quota, replicas: u32) -> Result<Self, QuotaError> {
        if replicas == 0 {
            return Err(QuotaError::ZeroRate);
        }
        if quota.is_unlimited() || quota.is_blocked() {
            return Ok(OnUnavailable::Local(quota));
        }
        let count = quota.count() / replicas;
        if count == 0 {
            return Err(QuotaError::ZeroRate);
        }
        let share = Quota::new(count, quota.period());
        let burst = (quota.burst_size() / replicas).max(1);
        if burst == share.burst_size() {
            return Ok(OnUnavailable::Local(share));
        }
        Ok(OnUnavailable::Local(share.burst(burst)))
    }
}
