//! The engine alone, under criterion: one event matched against 10k and 100k actions from the
//! standard workload (`cargo bench -p herald-matcher`). The end-to-end figures the issue asks
//! for come from `herald-matcher bench` (see `cargo xtask bench matcher`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald_common::action::ActionMatching;
use herald_common::ids::{ActionId, TenantId};
use herald_common::json_tree::Json;
use herald_engine::{Engine, MatchSpec};
use herald_matcher::bench::Workload;
use serde_json::Value;

fn lines(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Vec<String> {
    let mut buffer = Vec::new();
    write(&mut buffer).expect("in-memory write");
    String::from_utf8(buffer)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn engine_for(workload: &Workload) -> (Engine, Vec<String>) {
    let actions = lines(|out| workload.write_actions(out));
    let specs: Vec<(TenantId, ActionMatching)> = actions
        .iter()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).expect("json");
            let tenant = value["tenant_id"]
                .as_str()
                .expect("tenant")
                .parse()
                .expect("tenant id");
            value.as_object_mut().expect("object").remove("tenant_id");
            (
                tenant,
                ActionMatching::from_json(&Json::from_value(&value)).expect("valid action"),
            )
        })
        .collect();
    let engine = Engine::new();
    let specs: Vec<_> = specs
        .into_iter()
        .map(|(tenant, spec)| (tenant, ActionId::new(), MatchSpec::from(spec)))
        .collect();
    engine.load(&specs);
    (engine, lines(|out| workload.write_events(out)))
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_json");
    group.throughput(Throughput::Elements(1));
    for actions in [10_000, 100_000] {
        let (engine, events) = engine_for(&Workload::new(actions, 20_000, false));
        let mut next = 0usize;
        let mut out = Vec::new();
        group.bench_function(format!("{actions}_actions"), |b| {
            b.iter(|| {
                out.clear();
                engine
                    .match_json(black_box(&events[next % events.len()]), &mut out)
                    .expect("match");
                next += 1;
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
