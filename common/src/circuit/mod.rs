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
mod tests;
