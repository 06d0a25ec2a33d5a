//! Circuit transitions as tables: each event in each state, with the time and policy given.

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
    let by_streak = Circuit::closed(at(0)).absorb(&streak_only(5), &outcomes("fffffffff"), at(1));
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
