//! The metric set: every name prefixed and rendered, stage counts, and a fixed set of labels.

use super::*;

#[test]
fn every_metric_is_prefixed_and_renders() {
    let metrics = Metrics::new("test");
    metrics.stage_enter(Stage::Matcher, 1).done_all();
    let text = metrics.render();
    assert!(text.contains("herald_build_info"));
    for family in metrics.registry().gather() {
        assert!(family.name().starts_with("herald_"), "{}", family.name());
    }
}

fn value(metrics: &Metrics, stage: Stage, direction: &str) -> u64 {
    metrics
        .stage_messages
        .with_label_values(&[stage.as_str(), direction])
        .get()
}

#[test]
fn stage_work_counts_out_only_what_was_done_and_leaves_nothing_in_flight() {
    let metrics = Metrics::new("test");
    let in_flight = metrics
        .stage_in_flight
        .with_label_values(&[Stage::Executor.as_str()]);
    let last = metrics
        .stage_last_processed
        .with_label_values(&[Stage::Executor.as_str()]);
    let mut work = metrics.stage_enter(Stage::Executor, 3);
    assert_eq!(in_flight.get(), 3);
    assert_eq!(
        value(&metrics, Stage::Executor, "out"),
        0,
        "created at zero"
    );
    assert_eq!(last.get(), 0);
    work.done(1);
    assert_eq!((in_flight.get(), last.get() > 0), (2, true));
    let failed = metrics.stage_enter(Stage::Executor, 2);
    work.absorb(failed);
    assert_eq!(in_flight.get(), 4);
    work.done(1);
    drop(work);
    assert_eq!(in_flight.get(), 0, "the failed ones leave the gauge");
    assert_eq!(value(&metrics, Stage::Executor, "in"), 5);
    assert_eq!(
        value(&metrics, Stage::Executor, "out"),
        2,
        "only the done ones"
    );
    metrics.stage_enter(Stage::Executor, 2).done_all();
    assert_eq!(value(&metrics, Stage::Executor, "out"), 4);
    assert_eq!(in_flight.get(), 0);
}

#[test]
fn http_methods_are_a_fixed_set() {
    assert_eq!(http_method_label("PATCH"), "PATCH");
    assert_eq!(http_method_label("get"), "other");
    assert_eq!(http_method_label("BREW"), "other");
}
