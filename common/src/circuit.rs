//! Circuit breaking per webhook destination: the decisions, with no I/O, clock or randomness
//! (`now` is always passed in), so every transition can be table-tested.
//!
//! A destination (a tenant's `scheme://host:port`) that keeps failing should stop receiving
//! attempts for a while instead of burning every execution's retries on it. Several executor
//! processes send to the same destination, so its circuit lives in one PostgreSQL row that they
//! share rather than in any one process's memory. Touching that row on every attempt would make
//! the database the bottleneck of delivery, so the work is split three ways:
//!
//! - Each executor condenses the outcomes it saw for a destination into [`Outcomes`] for about
//!   200 ms and then applies them under a row lock with [`Circuit::absorb`]. That is why the
//!   consecutive-failure rule works on counts (`trailing_failures`) rather than on a stream.
//! - Every executor caches the rows (refreshed about every 250 ms) and asks [`Circuit::admit`]
//!   before sending; a slightly stale answer costs at most a few extra attempts or a short hold.
//! - When an open circuit is due for a trial, the executors race for the limited probe slots
//!   with [`Circuit::claim_probe`] under the row lock, so only the winners send, and the probe's
//!   outcome comes back through [`Circuit::probe_result`]. A probe whose executor died never
//!   reports; its lease runs out and frees the slot.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How sensitive circuits are and how long they stay open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitPolicy {
    /// Failure-rate window length (default 60 s).
    pub window: Duration,
    /// The rate rule needs at least this many attempts in the window (default 10).
    pub min_attempts: u32,
    /// ... and at least this share of failures (default 0.5).
    pub failure_ratio: f64,
    /// Or this many failures in a row (default 5). Zero is treated as one.
    pub consecutive_failures: u32,
    /// Cool-down after the first trip (default 5 s); doubles with each further trip
    /// without an intervening close, up to `max_cooldown` (default 300 s).
    pub cooldown: Duration,
    /// The longest cool-down, however many trips (default 300 s).
    pub max_cooldown: Duration,
    /// Probes admitted at once while half-open (default 1). Zero is treated as one, so a
    /// circuit can always close again.
    pub half_open_probes: u32,
    /// A claimed probe that reports nothing within this long is considered lost (its executor
    /// died), freeing its slot (default 60 s).
    pub probe_lease: Duration,
}

impl Default for CircuitPolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            min_attempts: 10,
            failure_ratio: 0.5,
            consecutive_failures: 5,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(300),
            half_open_probes: 1,
            probe_lease: Duration::from_secs(60),
        }
    }
}

/// Where a circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Healthy: attempts are sent.
    Closed,
    /// Tripped: attempts are held back until the cool-down ends.
    Open,
    /// Cooled down: a few probes test the destination before it closes or opens again.
    HalfOpen,
}

impl State {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// The state a stored name stands for, or `None` for an unknown name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "closed" => Some(State::Closed),
            "open" => Some(State::Open),
            "half_open" => Some(State::HalfOpen),
            _ => None,
        }
    }
}

/// One destination's circuit, as stored in one database row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Circuit {
    /// Where the circuit stands.
    pub state: State,
    /// When it last opened (None when it never did or after a reset).
    pub opened_at: Option<DateTime<Utc>>,
    /// While open: when probing may start. While half-open: unused (None).
    pub retry_at: Option<DateTime<Utc>>,
    /// Trips since it last closed (drives the growing cool-down); 0 when closed.
    pub trips: u32,
    /// Failures in a row among the ordinary attempts absorbed so far.
    pub consecutive_failures: u32,
    /// When the current failure-rate window began.
    pub window_start: DateTime<Utc>,
    /// Ordinary attempts absorbed in the current window.
    pub window_attempts: u32,
    /// Failed ordinary attempts absorbed in the current window.
    pub window_failures: u32,
    /// Probes claimed and not yet reported, each until its lease ends.
    pub probes_in_flight: u32,
    /// When the probes in flight are given up as lost. All of them share this one lease,
    /// which each claim extends.
    pub probe_lease_until: Option<DateTime<Utc>>,
}

/// Outcomes one executor saw for one destination since its last flush, in order condensed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcomes {
    /// Attempts that succeeded.
    pub successes: u32,
    /// Attempts that failed.
    pub failures: u32,
    /// Failures after the last success among these (all of them when there was no success).
    pub trailing_failures: u32,
}

impl Outcomes {
    /// Counts one more attempt's outcome, in the order the attempts finished.
    pub fn record(&mut self, success: bool) {
        if success {
            self.successes = self.successes.saturating_add(1);
            self.trailing_failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.trailing_failures = self.trailing_failures.saturating_add(1);
        }
    }

    /// These outcomes followed by `later` ones, as if recorded in one go (a flush that failed
    /// is put back before what was recorded meanwhile).
    pub fn then(&self, later: &Outcomes) -> Outcomes {
        Outcomes {
            successes: self.successes.saturating_add(later.successes),
            failures: self.failures.saturating_add(later.failures),
            trailing_failures: if later.successes > 0 {
                later.trailing_failures
            } else {
                self.trailing_failures.saturating_add(later.failures)
            },
        }
    }

    /// Whether nothing was recorded, so there is nothing to flush.
    pub fn is_empty(&self) -> bool {
        self.successes == 0 && self.failures == 0
    }
}

/// What an executor should do with an attempt for a destination, by its cached circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: send.
    Send,
    /// Open and past `retry_at`, or half-open with a free probe slot (or an expired probe
    /// lease): try to claim a probe (with [`Circuit::claim_probe`] under the row lock) and send
    /// it as a probe if the claim succeeds.
    TryProbe,
    /// Hold the attempt back (without spending it) until this time.
    HoldUntil(DateTime<Utc>),
}

/// How long a circuit stays open after its `trips`-th trip since it last closed: the policy's
/// cool-down, doubled for each trip after the first, capped at `max_cooldown`. Zero trips count
/// as one.
pub fn cooldown(policy: &CircuitPolicy, trips: u32) -> Duration {
    let doublings = trips.max(1) - 1;
    // Past 31 doublings the factor no longer fits; any realistic cap was reached long before.
    1u32.checked_shl(doublings)
        .and_then(|factor| policy.cooldown.checked_mul(factor))
        .map_or(policy.max_cooldown, |grown| grown.min(policy.max_cooldown))
}

/// `instant + span`, pinned to the latest representable time instead of overflowing, so an
/// absurd policy yields "never" rather than a panic.
fn after(instant: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(span)
        .ok()
        .and_then(|span| instant.checked_add_signed(span))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Longest an attempt is held while another attempt probes the circuit (shorter when the
/// policy's cool-down is): the probe's verdict is usually known well within it.
const HOLD_WHILE_PROBING: Duration = Duration::from_secs(5);

impl Circuit {
    /// A new destination's circuit: closed, nothing counted, its window starting at `now`.
    pub fn closed(now: DateTime<Utc>) -> Circuit {
        Circuit {
            state: State::Closed,
            opened_at: None,
            retry_at: None,
            trips: 0,
            consecutive_failures: 0,
            window_start: now,
            window_attempts: 0,
            window_failures: 0,
            probes_in_flight: 0,
            probe_lease_until: None,
        }
    }

    /// An operator's manual reset: closed, with its history forgotten.
    pub fn reset(now: DateTime<Utc>) -> Circuit {
        Circuit::closed(now)
    }

    /// Whether an attempt may be sent now, may try for a probe slot, or must wait.
    pub fn admit(&self, policy: &CircuitPolicy, now: DateTime<Utc>) -> Admission {
        match self.state {
            State::Closed => Admission::Send,
            State::Open => match self.retry_at {
                Some(retry_at) if now < retry_at => Admission::HoldUntil(retry_at),
                // An open row without `retry_at` would otherwise hold forever; let it probe.
                _ => Admission::TryProbe,
            },
            State::HalfOpen => {
                if self.probes_in_flight < policy.half_open_probes.max(1) || self.lease_expired(now)
                {
                    Admission::TryProbe
                } else {
                    // Not until the lease ends: the probe usually answers long before, and
                    // a success should let the held attempts go soon after it.
                    let soon = after(now, policy.cooldown.min(HOLD_WHILE_PROBING));
                    Admission::HoldUntil(match self.probe_lease_until {
                        Some(lease) => lease.min(soon),
                        None => soon,
                    })
                }
            }
        }
    }

    /// The circuit after one executor's ordinary (non-probe) outcomes since its last flush.
    /// Only a closed circuit trips; outcomes arriving while open or half-open are attempts that
    /// were already in flight when it opened, so they are counted but change no state.
    pub fn absorb(
        &self,
        policy: &CircuitPolicy,
        outcomes: &Outcomes,
        now: DateTime<Utc>,
    ) -> Circuit {
        let mut next = *self;
        if now >= after(next.window_start, policy.window) {
            next.window_start = now;
            next.window_attempts = 0;
            next.window_failures = 0;
        }
        let attempts = outcomes.successes.saturating_add(outcomes.failures);
        next.window_attempts = next.window_attempts.saturating_add(attempts);
        next.window_failures = next.window_failures.saturating_add(outcomes.failures);
        next.consecutive_failures = if outcomes.successes > 0 {
            // Clamped because a miscounted batch must not invent failures.
            outcomes.trailing_failures.min(outcomes.failures)
        } else {
            next.consecutive_failures.saturating_add(outcomes.failures)
        };
        if next.state == State::Closed && next.should_trip(policy) {
            next.open(policy, now);
        }
        next
    }

    /// Whether outcomes first seen at `first_seen` predate this circuit's last close (by a
    /// probe or an operator's reset): those attempts were made against the endpoint as it was
    /// before, so they must not open the circuit again. A closed circuit with a window and no
    /// attempts counted in it was just closed (a window that rolls over is rolled while
    /// outcomes are added, so it is never stored empty).
    pub fn closed_after(&self, first_seen: DateTime<Utc>) -> bool {
        self.state == State::Closed && self.window_attempts == 0 && first_seen < self.window_start
    }

    /// Claims a probe slot under the row lock: the circuit with the claim recorded when
    /// [`Circuit::admit`] would say [`Admission::TryProbe`], or `None` when there is nothing to
    /// claim (closed, not yet due, or every slot taken).
    pub fn claim_probe(&self, policy: &CircuitPolicy, now: DateTime<Utc>) -> Option<Circuit> {
        if self.admit(policy, now) != Admission::TryProbe {
            return None;
        }
        let mut next = *self;
        // Probes under an expired lease are presumed lost with their executors, so they no
        // longer hold slots; an open circuit has none in flight.
        next.probes_in_flight = if self.state == State::Open || self.lease_expired(now) {
            1
        } else {
            self.probes_in_flight.saturating_add(1)
        };
        next.state = State::HalfOpen;
        next.retry_at = None;
        next.probe_lease_until = Some(after(now, policy.probe_lease));
        Some(next)
    }

    /// The circuit after a probe's outcome: a success closes it, a failure opens it again with a
    /// longer cool-down. A result arriving when the circuit is no longer half-open (reset, or
    /// another probe decided first) only frees its slot; a failure then counts as an ordinary
    /// failure, since the destination did fail.
    pub fn probe_result(
        &self,
        policy: &CircuitPolicy,
        success: bool,
        now: DateTime<Utc>,
    ) -> Circuit {
        if self.state == State::HalfOpen {
            if success {
                return Circuit::closed(now);
            }
            let mut next = *self;
            next.open(policy, now);
            return next;
        }
        let mut next = if success {
            *self
        } else {
            let failure = Outcomes {
                successes: 0,
                failures: 1,
                trailing_failures: 1,
            };
            self.absorb(policy, &failure, now)
        };
        next.probes_in_flight = next.probes_in_flight.saturating_sub(1);
        next
    }

    /// The share of failed attempts in the current window, or `None` with no attempts, for
    /// display.
    pub fn failure_rate(&self) -> Option<f64> {
        (self.window_attempts > 0)
            .then(|| f64::from(self.window_failures) / f64::from(self.window_attempts))
    }

    fn lease_expired(&self, now: DateTime<Utc>) -> bool {
        self.probe_lease_until.is_some_and(|until| now >= until)
    }

    fn should_trip(&self, policy: &CircuitPolicy) -> bool {
        // Requiring a failure keeps a zero ratio or zero minimum from tripping a circuit on
        // successes or on nothing at all.
        let by_rate = self.window_failures > 0
            && self.window_attempts >= policy.min_attempts
            && f64::from(self.window_failures)
                >= policy.failure_ratio * f64::from(self.window_attempts);
        let by_streak = self.consecutive_failures >= policy.consecutive_failures.max(1);
        by_rate || by_streak
    }

    /// Opens the circuit for the next, longer cool-down. The counts start over so that what
    /// happens while it is open or half-open is not mixed with what tripped it.
    fn open(&mut self, policy: &CircuitPolicy, now: DateTime<Utc>) {
        self.state = State::Open;
        self.opened_at = Some(now);
        self.trips = self.trips.saturating_add(1);
        self.retry_at = Some(after(now, cooldown(policy, self.trips)));
        self.window_start = now;
        self.window_attempts = 0;
        self.window_failures = 0;
        self.consecutive_failures = 0;
        self.probes_in_flight = 0;
        self.probe_lease_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn base() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        base() + chrono::Duration::seconds(seconds)
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn outcomes(pattern: &str) -> Outcomes {
        let mut condensed = Outcomes::default();
        for outcome in pattern.chars() {
            condensed.record(outcome == 's');
        }
        condensed
    }

    /// Only the consecutive rule can trip.
    fn streak_only(threshold: u32) -> CircuitPolicy {
        CircuitPolicy {
            min_attempts: u32::MAX,
            consecutive_failures: threshold,
            ..CircuitPolicy::default()
        }
    }

    /// Only the rate rule can trip.
    fn rate_only(min_attempts: u32, failure_ratio: f64) -> CircuitPolicy {
        CircuitPolicy {
            min_attempts,
            failure_ratio,
            consecutive_failures: u32::MAX,
            ..CircuitPolicy::default()
        }
    }

    fn open_circuit(trips: u32, opened: i64, retry: i64) -> Circuit {
        Circuit {
            state: State::Open,
            opened_at: Some(at(opened)),
            retry_at: Some(at(retry)),
            trips,
            ..Circuit::closed(at(opened))
        }
    }

    fn half_open(probes: u32, lease_until: i64) -> Circuit {
        Circuit {
            state: State::HalfOpen,
            opened_at: Some(at(0)),
            trips: 1,
            probes_in_flight: probes,
            probe_lease_until: Some(at(lease_until)),
            ..Circuit::closed(at(0))
        }
    }

    #[test]
    fn state_names_round_trip() {
        for state in [State::Closed, State::Open, State::HalfOpen] {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
        assert_eq!(State::HalfOpen.as_str(), "half_open");
        assert_eq!(State::parse("half-open"), None);
        assert_eq!(State::parse(""), None);
    }

    #[test]
    fn outcomes_followed_by_later_ones_condense_like_one_run() {
        let runs: [&[bool]; 4] = [&[false, true, false], &[false, false], &[true], &[]];
        for earlier in runs {
            for later in runs {
                let (mut a, mut b, mut both) = (
                    Outcomes::default(),
                    Outcomes::default(),
                    Outcomes::default(),
                );
                earlier.iter().for_each(|s| a.record(*s));
                later.iter().for_each(|s| b.record(*s));
                earlier.iter().chain(later).for_each(|s| both.record(*s));
                assert_eq!(a.then(&b), both, "{earlier:?} then {later:?}");
            }
        }
    }

    #[test]
    fn outcomes_condense_in_order() {
        let table = [
            ("", 0, 0, 0, true),
            ("fff", 0, 3, 3, false),
            ("ffs", 1, 2, 0, false),
            ("fsff", 1, 3, 2, false),
            ("sss", 3, 0, 0, false),
        ];
        for (pattern, successes, failures, trailing, empty) in table {
            let condensed = outcomes(pattern);
            assert_eq!(
                condensed,
                Outcomes {
                    successes,
                    failures,
                    trailing_failures: trailing
                },
                "{pattern:?}"
            );
            assert_eq!(condensed.is_empty(), empty, "{pattern:?}");
        }
    }

    #[test]
    fn cooldown_doubles_and_caps() {
        let policy = CircuitPolicy::default();
        let table = [
            (0, 5),
            (1, 5),
            (2, 10),
            (3, 20),
            (4, 40),
            (5, 80),
            (6, 160),
            (7, 300),
            (8, 300),
            (32, 300),
            (33, 300),
            (u32::MAX, 300),
        ];
        for (trips, expected) in table {
            assert_eq!(cooldown(&policy, trips), secs(expected), "trips {trips}");
        }
    }

    #[test]
    fn cooldown_does_not_overflow_a_huge_policy() {
        let policy = CircuitPolicy {
            cooldown: Duration::MAX,
            max_cooldown: Duration::MAX,
            ..CircuitPolicy::default()
        };
        assert_eq!(cooldown(&policy, 2), Duration::MAX);
        let opened = Circuit::closed(at(0)).absorb(&policy, &outcomes("fffff"), at(1));
        assert_eq!(opened.retry_at, Some(DateTime::<Utc>::MAX_UTC));
        assert_eq!(
            opened.admit(&policy, at(2)),
            Admission::HoldUntil(DateTime::<Utc>::MAX_UTC)
        );
    }

    #[test]
    fn five_failures_in_a_row_open_it() {
        let policy = CircuitPolicy::default();
        let opened = Circuit::closed(at(0)).absorb(&policy, &outcomes("fffff"), at(1));
        assert_eq!(
            opened,
            Circuit {
                state: State::Open,
                opened_at: Some(at(1)),
                retry_at: Some(at(6)),
                trips: 1,
                ..Circuit::closed(at(1))
            }
        );
    }

    #[test]
    fn the_consecutive_rule_counts_across_flushes() {
        let policy = streak_only(5);
        // (flush, open afterwards, consecutive afterwards while closed)
        let table = [
            ("ff", false, 2),
            ("sf", false, 1),
            ("fff", false, 4),
            ("f", true, 0),
        ];
        let mut circuit = Circuit::closed(at(0));
        for (step, (flush, open, consecutive)) in table.into_iter().enumerate() {
            circuit = circuit.absorb(&policy, &outcomes(flush), at(step as i64));
            assert_eq!(circuit.state == State::Open, open, "step {step} {flush:?}");
            assert_eq!(circuit.consecutive_failures, consecutive, "step {step}");
        }
    }

    #[test]
    fn a_success_resets_consecutive() {
        let policy = streak_only(5);
        let table = [
            ("ffffs", 0, State::Closed),
            ("ffffsf", 1, State::Closed),
            ("ffffsffff", 4, State::Closed),
            ("ffffsfffff", 0, State::Open),
        ];
        for (pattern, consecutive, state) in table {
            let circuit = Circuit::closed(at(0)).absorb(&policy, &outcomes(pattern), at(1));
            assert_eq!(circuit.state, state, "{pattern:?}");
            assert_eq!(circuit.consecutive_failures, consecutive, "{pattern:?}");
        }
        // A success in a later flush forgets an earlier flush's streak.
        let circuit = Circuit::closed(at(0))
            .absorb(&policy, &outcomes("ffff"), at(1))
            .absorb(&policy, &outcomes("sff"), at(2))
            .absorb(&policy, &outcomes("ff"), at(3));
        assert_eq!(circuit.state, State::Closed);
        assert_eq!(circuit.consecutive_failures, 4);
    }

    #[test]
    fn the_rate_rule_needs_enough_attempts() {
        let policy = rate_only(10, 0.5);
        let nine_failures = Circuit::closed(at(0)).absorb(&policy, &outcomes("fffffffff"), at(1));
        assert_eq!(nine_failures.state, State::Closed);
        assert_eq!(nine_failures.window_attempts, 9);
        assert_eq!(nine_failures.failure_rate(), Some(1.0));
        // The same nine failures trip the consecutive rule at five.
        let by_streak =
            Circuit::closed(at(0)).absorb(&streak_only(5), &outcomes("fffffffff"), at(1));
        assert_eq!(by_streak.state, State::Open);
    }

    #[test]
    fn the_rate_rule_trips_at_the_ratio() {
        let policy = rate_only(10, 0.5);
        // (attempts in order, trips): ten attempts with exactly half failing is enough.
        let table = [
            ("sfsfsfsfsf", true),
            ("fffffsssss", true),
            ("ssssssffff", false),
            ("ssssssfffff", false),
            ("sssssffffff", true),
            ("fffffffff", false),
        ];
        for (pattern, trips) in table {
            let circuit = Circuit::closed(at(0)).absorb(&policy, &outcomes(pattern), at(1));
            assert_eq!(circuit.state == State::Open, trips, "{pattern:?}");
        }
    }

    #[test]
    fn the_rate_rule_adds_up_flushes_within_the_window() {
        let policy = rate_only(10, 0.5);
        let circuit = Circuit::closed(at(0))
            .absorb(&policy, &outcomes("sffsf"), at(10))
            .absorb(&policy, &outcomes("sfs"), at(30));
        assert_eq!(circuit.state, State::Closed);
        assert_eq!((circuit.window_attempts, circuit.window_failures), (8, 4));
        let circuit = circuit.absorb(&policy, &outcomes("sf"), at(59));
        assert_eq!(circuit.state, State::Open);
    }

    #[test]
    fn a_window_roll_drops_old_counts() {
        let policy = rate_only(10, 0.5);
        let circuit = Circuit::closed(at(0)).absorb(&policy, &outcomes("sffsfsfsf"), at(10));
        assert_eq!(circuit.window_attempts, 9);
        // At exactly window_start + window the old window is over.
        let rolled = circuit.absorb(&policy, &outcomes("f"), at(60));
        assert_eq!(rolled.state, State::Closed);
        assert_eq!(rolled.window_start, at(60));
        assert_eq!((rolled.window_attempts, rolled.window_failures), (1, 1));
        // One second earlier the same failure would have tripped it.
        let kept = circuit.absorb(&policy, &outcomes("f"), at(59));
        assert_eq!(kept.state, State::Open);
    }

    #[test]
    fn a_degenerate_policy_does_not_trip_without_failures() {
        let policy = CircuitPolicy {
            min_attempts: 0,
            failure_ratio: 0.0,
            consecutive_failures: 0,
            ..CircuitPolicy::default()
        };
        let circuit = Circuit::closed(at(0))
            .absorb(&policy, &Outcomes::default(), at(1))
            .absorb(&policy, &outcomes("sss"), at(2));
        assert_eq!(circuit.state, State::Closed);
        let circuit = circuit.absorb(&policy, &outcomes("f"), at(3));
        assert_eq!(circuit.state, State::Open);
    }

    #[test]
    fn outcomes_absorbed_while_open_or_half_open_never_change_state() {
        let policy = CircuitPolicy::default();
        for circuit in [open_circuit(1, 0, 5), half_open(1, 60)] {
            for pattern in ["ffffffffffff", "sss", "fs", ""] {
                let after_flush = circuit.absorb(&policy, &outcomes(pattern), at(1));
                let counted = outcomes(pattern);
                assert_eq!(
                    after_flush,
                    Circuit {
                        consecutive_failures: if counted.successes > 0 {
                            counted.trailing_failures
                        } else {
                            counted.failures
                        },
                        window_attempts: counted.successes + counted.failures,
                        window_failures: counted.failures,
                        ..circuit
                    },
                    "{:?} {pattern:?}",
                    circuit.state
                );
            }
        }
    }

    #[test]
    fn admit_by_state_and_time() {
        let policy = CircuitPolicy::default();
        let lease_free_half_open = Circuit {
            probe_lease_until: None,
            ..half_open(1, 0)
        };
        let table = [
            (Circuit::closed(at(0)), 100, Admission::Send),
            (open_circuit(1, 0, 5), 4, Admission::HoldUntil(at(5))),
            (open_circuit(1, 0, 5), 5, Admission::TryProbe),
            (open_circuit(1, 0, 5), 9, Admission::TryProbe),
            (half_open(0, 60), 10, Admission::TryProbe),
            // While another attempt probes: held for the cool-down (5 s), never past the
            // lease, so a successful probe lets the held attempts go soon after.
            (half_open(1, 60), 10, Admission::HoldUntil(at(15))),
            (half_open(1, 60), 57, Admission::HoldUntil(at(60))),
            (half_open(1, 60), 60, Admission::TryProbe),
            (lease_free_half_open, 10, Admission::HoldUntil(at(15))),
        ];
        for (row, (circuit, now, expected)) in table.into_iter().enumerate() {
            assert_eq!(circuit.admit(&policy, at(now)), expected, "row {row}");
        }
    }

    #[test]
    fn claim_probe_from_open_once_due() {
        let policy = CircuitPolicy::default();
        let circuit = open_circuit(2, 0, 10);
        assert_eq!(circuit.claim_probe(&policy, at(9)), None);
        assert_eq!(Circuit::closed(at(0)).claim_probe(&policy, at(9)), None);
        let claimed = circuit.claim_probe(&policy, at(10)).unwrap();
        assert_eq!(
            claimed,
            Circuit {
                state: State::HalfOpen,
                retry_at: None,
                probes_in_flight: 1,
                probe_lease_until: Some(at(70)),
                ..circuit
            }
        );
        // The one slot is taken until the lease ends.
        assert_eq!(claimed.claim_probe(&policy, at(69)), None);
        let reclaimed = claimed.claim_probe(&policy, at(70)).unwrap();
        assert_eq!(reclaimed.probes_in_flight, 1);
        assert_eq!(reclaimed.probe_lease_until, Some(at(130)));
    }

    #[test]
    fn claim_probe_respects_half_open_probes() {
        let policy = CircuitPolicy {
            half_open_probes: 3,
            ..CircuitPolicy::default()
        };
        let mut circuit = open_circuit(1, 0, 5);
        for (second, probes) in [(5, 1), (6, 2), (7, 3)] {
            circuit = circuit.claim_probe(&policy, at(second)).unwrap();
            assert_eq!(circuit.probes_in_flight, probes, "claim at {second}");
            assert_eq!(circuit.probe_lease_until, Some(at(second + 60)));
        }
        assert_eq!(circuit.claim_probe(&policy, at(8)), None);
        assert_eq!(circuit.admit(&policy, at(8)), Admission::HoldUntil(at(13)));
        // Once the shared lease lapses all three are presumed lost.
        let after_lease = circuit.claim_probe(&policy, at(67)).unwrap();
        assert_eq!(after_lease.probes_in_flight, 1);
    }

    #[test]
    fn a_zero_probe_policy_still_admits_one_probe() {
        let policy = CircuitPolicy {
            half_open_probes: 0,
            ..CircuitPolicy::default()
        };
        assert_eq!(half_open(0, 60).admit(&policy, at(1)), Admission::TryProbe);
        assert_eq!(half_open(1, 60).claim_probe(&policy, at(1)), None);
    }

    #[test]
    fn a_probe_success_closes_it() {
        let policy = CircuitPolicy::default();
        let circuit = Circuit {
            trips: 3,
            window_attempts: 4,
            window_failures: 4,
            consecutive_failures: 4,
            ..half_open(1, 60)
        };
        assert_eq!(
            circuit.probe_result(&policy, true, at(20)),
            Circuit::closed(at(20))
        );
    }

    #[test]
    fn a_probe_failure_reopens_it_with_a_longer_cooldown() {
        let policy = CircuitPolicy::default();
        // trips before the failed probe -> cool-down after it
        let table = [(1, 10), (2, 20), (5, 160), (6, 300), (40, 300)];
        for (trips, cooldown_s) in table {
            let circuit = Circuit {
                trips,
                ..half_open(1, 60)
            };
            assert_eq!(
                circuit.probe_result(&policy, false, at(20)),
                Circuit {
                    state: State::Open,
                    opened_at: Some(at(20)),
                    retry_at: Some(at(20 + cooldown_s)),
                    trips: trips + 1,
                    ..Circuit::closed(at(20))
                },
                "trips {trips}"
            );
        }
    }

    #[test]
    fn the_whole_cycle_grows_the_cooldown_until_a_probe_succeeds() {
        let policy = CircuitPolicy::default();
        let circuit = Circuit::closed(at(0)).absorb(&policy, &outcomes("fffff"), at(0));
        assert_eq!(circuit.retry_at, Some(at(5)));
        let probing = circuit.claim_probe(&policy, at(5)).unwrap();
        let reopened = probing.probe_result(&policy, false, at(6));
        assert_eq!((reopened.trips, reopened.retry_at), (2, Some(at(16))));
        let probing = reopened.claim_probe(&policy, at(16)).unwrap();
        let closed = probing.probe_result(&policy, true, at(17));
        assert_eq!(closed, Circuit::closed(at(17)));
        // After closing, the next trip starts from the first cool-down again.
        let tripped = closed.absorb(&policy, &outcomes("fffff"), at(18));
        assert_eq!((tripped.trips, tripped.retry_at), (1, Some(at(23))));
    }

    #[test]
    fn a_late_probe_result_only_frees_its_slot() {
        let policy = CircuitPolicy::default();
        let reset = Circuit::reset(at(10));
        assert_eq!(reset.probe_result(&policy, true, at(11)), reset);
        let failed = reset.probe_result(&policy, false, at(11));
        assert_eq!(failed.state, State::Closed);
        assert_eq!(
            (
                failed.consecutive_failures,
                failed.window_attempts,
                failed.window_failures
            ),
            (1, 1, 1)
        );
        // Another probe already reopened it: a late failure is counted, a late success ignored.
        let reopened = open_circuit(2, 10, 20);
        assert_eq!(reopened.probe_result(&policy, true, at(12)), reopened);
        let counted = reopened.probe_result(&policy, false, at(12));
        assert_eq!(counted.state, State::Open);
        assert_eq!(counted.retry_at, Some(at(20)));
        assert_eq!(counted.consecutive_failures, 1);
    }

    #[test]
    fn a_late_probe_failure_can_trip_a_closed_circuit() {
        let policy = CircuitPolicy::default();
        let nearly = Circuit::closed(at(0)).absorb(&policy, &outcomes("ffff"), at(1));
        let tripped = nearly.probe_result(&policy, false, at(2));
        assert_eq!(tripped.state, State::Open);
        assert_eq!(tripped.trips, 1);
    }

    #[test]
    fn outcomes_from_before_a_close_are_told_apart() {
        let reset = Circuit::reset(at(10));
        assert!(reset.closed_after(at(9)));
        assert!(!reset.closed_after(at(10)));
        let counted = reset.absorb(&CircuitPolicy::default(), &outcomes("f"), at(11));
        assert!(!counted.closed_after(at(9)), "counting since the close");
        assert!(!open_circuit(1, 0, 5).closed_after(at(0)));
    }

    #[test]
    fn reset_forgets_everything() {
        let policy = CircuitPolicy::default();
        // Whatever the row held (a long-open circuit, probes in flight), a reset closes it.
        let reset = Circuit::reset(at(30));
        assert_eq!(reset, Circuit::closed(at(30)));
        assert_eq!(reset.admit(&policy, at(30)), Admission::Send);
        assert_eq!(reset.claim_probe(&policy, at(30)), None);
        assert_eq!(
            Circuit::closed(at(30)),
            Circuit {
                state: State::Closed,
                opened_at: None,
                retry_at: None,
                trips: 0,
                consecutive_failures: 0,
                window_start: at(30),
                window_attempts: 0,
                window_failures: 0,
                probes_in_flight: 0,
                probe_lease_until: None,
            }
        );
    }

    #[test]
    fn failure_rate_for_display() {
        let policy = rate_only(u32::MAX, 0.5);
        assert_eq!(Circuit::closed(at(0)).failure_rate(), None);
        let circuit = Circuit::closed(at(0)).absorb(&policy, &outcomes("sffs"), at(1));
        assert_eq!(circuit.failure_rate(), Some(0.5));
    }
}
