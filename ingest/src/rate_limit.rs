//! Per-tenant request limits on one ingest replica: a token bucket per tenant, refilled at
//! `ingest.tenant_rate_per_s` up to `ingest.tenant_burst`. Per replica, not global: the
//! cluster's limit is the rate times the replicas, which is what lets ingest scale out
//! without a shared counter on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use herald_common::ids::TenantId;

/// One tenant's bucket. Pure: the caller gives the time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, rate_per_s: u32, burst: u32, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate_per_s)).min(f64::from(burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / f64::from(rate_per_s),
            ))
        }
    }
}

/// Every tenant's bucket on this replica.
#[derive(Debug)]
pub struct TenantLimiter {
    rate_per_s: u32,
    burst: u32,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl TenantLimiter {
    pub fn new(rate_per_s: u32, burst: u32) -> Self {
        Self {
            rate_per_s,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Lets one request of `tenant` through, or answers how long it should wait.
    pub fn check(&self, tenant: TenantId) -> Result<(), Duration> {
        if self.rate_per_s == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .entry(tenant)
            .or_insert_with(|| Bucket::full(self.burst, now))
            .take(self.rate_per_s, self.burst, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_a_burst_through_then_the_rate() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut bucket = Bucket::full(3, start);
        // (time in ms, allowed?)
        let table = [
            (0, true),
            (0, true),
            (0, true),
            (0, false),  // the burst is spent
            (50, false), // 10/s: half a token after 50 ms
            (100, true),
            (100, false),
            (10_000, true), // refilled, but only to the burst
            (10_000, true),
            (10_000, true),
            (10_000, false),
        ];
        for (at, allowed) in table {
            assert_eq!(bucket.take(10, 3, ms(at)).is_ok(), allowed, "at {at} ms");
        }
    }

    #[test]
    fn the_wait_is_until_the_next_token() {
        let start = Instant::now();
        let mut bucket = Bucket::full(1, start);
        assert!(bucket.take(4, 1, start).is_ok());
        let wait = bucket.take(4, 1, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(250));
    }

    #[test]
    fn tenants_have_their_own_buckets_and_zero_lifts_the_limit() {
        let limiter = TenantLimiter::new(1, 1);
        let (a, b) = (TenantId::new(), TenantId::new());
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_err());
        assert!(limiter.check(b).is_ok());
        let open = TenantLimiter::new(0, 0);
        assert!((0..1000).all(|_| open.check(a).is_ok()));
    }
}
