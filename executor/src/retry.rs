//! When to try again: a pure function of the policy, the attempt that failed, randomness and
//! the receiver's `Retry-After`.

use std::time::Duration;

use herald_common::action::{Backoff, RetryPolicy};

/// The delay before the next attempt after attempt `failed_attempt` (from 1) failed in a
/// retryable way, or `None` when the policy has no attempts left. `random` is uniform in
/// [0, 1) and drives jitter. `retry_after` (the receiver's hint) lengthens the delay up to the
/// policy's longest delay; it never shortens it.
pub fn next_delay(
    policy: &RetryPolicy,
    failed_attempt: u32,
    random: f64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    if failed_attempt >= policy.max_attempts() {
        return None;
    }
    let n = failed_attempt.max(1);
    let base = match policy {
        RetryPolicy::Delays { delays_s, .. } => {
            let index = (n as usize - 1).min(delays_s.len().saturating_sub(1));
            Duration::from_secs(u64::from(delays_s.get(index).copied().unwrap_or(0)))
        }
        RetryPolicy::Backoff {
            backoff,
            initial_s,
            max_s,
            jitter,
            ..
        } => {
            let initial = f64::from(*initial_s);
            let raw = match backoff {
                Backoff::Fixed => initial,
                Backoff::Linear => initial * f64::from(n),
                Backoff::Exponential => initial * 2f64.powi((n - 1).min(62) as i32),
            };
            let capped = raw.min(f64::from(*max_s));
            // Jitter spreads retries by ±jitter around the delay, never past the maximum.
            let spread = 1.0 + jitter * (2.0 * random.clamp(0.0, 1.0) - 1.0);
            Duration::from_secs_f64((capped * spread).clamp(0.0, f64::from(*max_s)))
        }
    };
    let ceiling = Duration::from_secs(u64::from(policy.max_delay_s()));
    Some(match retry_after {
        Some(hint) => base.max(hint.min(ceiling)),
        None => base,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(list: &[u32], max_attempts: u32) -> RetryPolicy {
        RetryPolicy::Delays {
            max_attempts,
            delays_s: list.to_vec(),
        }
    }

    fn backoff(kind: Backoff, initial_s: u32, max_s: u32, jitter: f64) -> RetryPolicy {
        RetryPolicy::Backoff {
            max_attempts: 10,
            backoff: kind,
            initial_s,
            max_s,
            jitter,
        }
    }

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn delay_lists_repeat_their_last_entry() {
        let policy = delays(&[30, 60, 300], 6);
        let table = [
            (1, secs(30)),
            (2, secs(60)),
            (3, secs(300)),
            (4, secs(300)),
            (5, secs(300)),
            (6, None),
        ];
        for (attempt, expected) in table {
            assert_eq!(
                next_delay(&policy, attempt, 0.5, None),
                expected,
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn the_default_policy_is_the_contracts() {
        let policy = RetryPolicy::default();
        let got: Vec<_> = (1..=5).map(|a| next_delay(&policy, a, 0.0, None)).collect();
        assert_eq!(got, vec![secs(30), secs(60), secs(300), secs(900), None]);
    }

    #[test]
    fn backoff_shapes_without_jitter() {
        let table = [
            (Backoff::Fixed, [5, 5, 5, 5]),
            (Backoff::Linear, [5, 10, 15, 20]),
            (Backoff::Exponential, [5, 10, 20, 40]),
        ];
        for (kind, expected) in table {
            let policy = backoff(kind, 5, 1000, 0.0);
            for (i, want) in expected.iter().enumerate() {
                assert_eq!(
                    next_delay(&policy, i as u32 + 1, 0.7, None),
                    secs(*want),
                    "{kind:?} #{i}"
                );
            }
        }
    }

    #[test]
    fn backoff_is_capped_at_its_maximum() {
        let policy = backoff(Backoff::Exponential, 10, 60, 0.0);
        assert_eq!(next_delay(&policy, 9, 0.0, None), secs(60));
    }

    #[test]
    fn jitter_stays_within_its_band_and_under_the_maximum() {
        let policy = backoff(Backoff::Fixed, 100, 110, 0.2);
        assert_eq!(
            next_delay(&policy, 1, 0.0, None),
            Some(Duration::from_secs_f64(80.0))
        );
        assert_eq!(
            next_delay(&policy, 1, 0.5, None),
            Some(Duration::from_secs_f64(100.0))
        );
        assert_eq!(
            next_delay(&policy, 1, 0.999_999, None),
            secs(110),
            "capped at max_s"
        );
    }

    #[test]
    fn retry_after_lengthens_up_to_the_policy_maximum() {
        let policy = delays(&[1, 10], 5);
        assert_eq!(next_delay(&policy, 1, 0.0, secs(2)), secs(2));
        assert_eq!(
            next_delay(&policy, 1, 0.0, secs(3600)),
            secs(10),
            "bounded by the longest delay"
        );
        assert_eq!(
            next_delay(&policy, 2, 0.0, secs(1)),
            secs(10),
            "never shortens"
        );
        assert_eq!(
            next_delay(&policy, 5, 0.0, secs(1)),
            None,
            "no attempts left"
        );
    }
}
