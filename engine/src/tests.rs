//! The engine's semantics as tables: scoping, patterns, conditions, order, updates, explain.

use herald_common::action::ActionMatching;
use herald_common::ids::{ActionId, TenantId};
use herald_common::json_tree::Json;
use serde_json::{Value, json};

use super::*;

fn spec(value: Value) -> ActionMatching {
    ActionMatching::from_json(&Json::from_value(&value)).unwrap_or_else(|e| panic!("{value}: {e}"))
}

fn matching(value: Value) -> MatchSpec {
    MatchSpec::from(spec(value))
}

fn line(tenant: TenantId, event: Value) -> String {
    let mut event = event;
    event["tenant_id"] = json!(tenant.to_string());
    event.to_string()
}

/// Something to match lines against, by action name.
trait Subject {
    fn names(&self, line: &str) -> Vec<String>;
}

impl Subject for Engine {
    /// Matches `line` both ways (the one-pass reader and a parsed event) and checks they agree.
    fn names(&self, line: &str) -> Vec<String> {
        let event = EventRef::parse(line).unwrap();
        let mut parsed = Vec::new();
        self.matches(&event, &mut parsed).unwrap();
        let mut one_pass = Vec::new();
        self.match_json(line, &mut one_pass).unwrap();
        // With tenant_id first, the one-pass reader reads data in place.
        let value: Value = serde_json::from_str(line).unwrap();
        let tenant_first = format!(
            "{{\"tenant_id\":{},{}",
            value["tenant_id"],
            &serde_json::to_string(&value).unwrap()[1..]
        );
        let mut in_place = Vec::new();
        self.match_json(&tenant_first, &mut in_place).unwrap();
        // Through the pipeline, on its own and among other lines (a guessed tenant, a line
        // whose tenant is not first, one that cannot be read).
        let lines = [line, &tenant_first, "{\"tenant_id\":\"nope\"}", line];
        let mut pipelined = Vec::new();
        self.match_lines_pipelined(&lines, |result| {
            pipelined.push(result.map(|matched| matched.to_vec()));
        });
        assert!(pipelined[2].is_err());
        for at in [0, 1, 3] {
            assert_eq!(pipelined[at].as_ref().unwrap(), &one_pass, "{}", lines[at]);
        }
        let names = |v: &[Matched]| -> Vec<String> {
            v.iter()
                .map(|m| {
                    self.action_name(event.tenant_id, m.id)
                        .expect("a live action")
                })
                .collect()
        };
        assert_eq!(names(&parsed), names(&one_pass), "{line}");
        assert_eq!(names(&parsed), names(&in_place), "{tenant_first}");
        names(&parsed)
    }
}

/// The same actions held both ways an engine holds them: loaded into a compact base, and put
/// one at a time (kept beside the base until there are enough to fold in).
struct Both {
    loaded: Engine,
    put: Engine,
}

impl Subject for Both {
    fn names(&self, line: &str) -> Vec<String> {
        let loaded = self.loaded.names(line);
        assert_eq!(
            loaded,
            self.put.names(line),
            "loaded and put disagree: {line}"
        );
        loaded
    }
}

impl Both {
    fn costly_parts(&self, tenant: TenantId) -> usize {
        let loaded = self.loaded.costly_parts(tenant);
        assert_eq!(loaded, self.put.costly_parts(tenant));
        loaded
    }
}

fn matched(subject: &impl Subject, line: &str) -> Vec<String> {
    subject.names(line)
}

/// One tenant holding `actions`, both ways.
fn engine_with(actions: &[Value]) -> (Both, TenantId) {
    let tenant = TenantId::new();
    let specs: Vec<(TenantId, ActionId, MatchSpec)> = actions
        .iter()
        .map(|a| (tenant, ActionId::new(), matching(a.clone())))
        .collect();
    let both = Both {
        loaded: Engine::new(),
        put: Engine::new(),
    };
    both.loaded.load(&specs);
    for (tenant, id, spec) in &specs {
        both.put.put(*tenant, *id, spec);
    }
    (both, tenant)
}

#[test]
fn event_type_patterns() {
    let (engine, tenant) = engine_with(&[
        json!({"name": "exact", "event_types": ["user.created"]}),
        json!({"name": "one", "event_types": ["user.*"]}),
        json!({"name": "many", "event_types": ["user.#"]}),
        json!({"name": "tail", "event_types": ["#.deleted"]}),
        json!({"name": "star", "event_types": ["*"]}),
        json!({"name": "hash", "event_types": ["#"]}),
        json!({"name": "list", "event_types": ["order.paid", "user.created", "user.*"]}),
    ]);
    let cases: &[(&str, &[&str])] = &[
        (
            "user.created",
            &["exact", "hash", "list", "many", "one", "star"],
        ),
        ("user", &["hash", "many", "star"]),
        (
            "user.deleted",
            &["hash", "list", "many", "one", "star", "tail"],
        ),
        ("user.created.v2", &["hash", "many", "star"]),
        ("order.paid", &["hash", "list", "star"]),
        ("account.deleted", &["hash", "star", "tail"]),
    ];
    for (event_type, expected) in cases {
        let got = matched(&engine, &line(tenant, json!({"type": event_type})));
        assert_eq!(got, *expected, "{event_type}");
    }
}

#[test]
fn tenants_are_isolated_and_source_filters() {
    let (engine, tenant) = engine_with(&[
        json!({"name": "any-source", "event_types": ["a"]}),
        json!({"name": "stripe-only", "event_types": ["a"], "source": "stripe"}),
    ]);
    assert_eq!(
        matched(&engine, &line(tenant, json!({"type": "a"}))),
        ["any-source"]
    );
    assert_eq!(
        matched(
            &engine,
            &line(tenant, json!({"type": "a", "source": "stripe"}))
        ),
        ["any-source", "stripe-only"]
    );
    assert_eq!(
        matched(
            &engine,
            &line(tenant, json!({"type": "a", "source": "Stripe"}))
        ),
        ["any-source"]
    );
    let stranger = TenantId::new();
    assert!(matched(&engine, &line(stranger, json!({"type": "a"}))).is_empty());
}

#[test]
fn conditions_on_data_metadata_and_top_level_fields() {
    let (engine, tenant) = engine_with(&[
        json!({"name": "big", "event_types": ["#"], "conditions": [{"path": "data.amount", "op": "gt", "value": 100}]}),
        json!({"name": "eu", "event_types": ["#"], "conditions": [{"path": "metadata.region", "op": "equals", "value": "eu"}]}),
        json!({"name": "sku-a", "event_types": ["#"], "conditions": [{"path": "data.items.sku", "op": "equals", "value": "a"}]}),
        json!({"name": "no-coupon", "event_types": ["#"], "conditions": [{"path": "data.coupon", "op": "not_exists"}]}),
        json!({"name": "typed", "event_types": ["#"], "conditions": [{"path": "type", "op": "starts_with", "value": "order."}]}),
        json!({"name": "group", "event_types": ["#"], "conditions": [
            {"any": [{"path": "data.currency", "op": "in", "value": ["usd", "eur"]}, {"path": "source", "op": "equals", "value": "shop"}]},
            {"not": {"path": "data.test", "op": "equals", "value": true}}]}),
    ]);
    let cases: &[(Value, &[&str])] = &[
        (
            json!({"type": "x", "data": {"amount": 150}}),
            &["big", "no-coupon"],
        ),
        (
            json!({"type": "x", "data": {"amount": 100.0}}),
            &["no-coupon"],
        ),
        (
            json!({"type": "x", "data": {"amount": "150"}}),
            &["no-coupon"],
        ),
        (
            json!({"type": "x", "metadata": {"region": "eu"}}),
            &["eu", "no-coupon"],
        ),
        (
            json!({"type": "x", "data": {"items": [{"sku": "b"}, {"sku": "a"}]}}),
            &["no-coupon", "sku-a"],
        ),
        (json!({"type": "x", "data": {"coupon": null}}), &[]),
        (
            json!({"type": "order.paid", "data": {"coupon": "x"}}),
            &["typed"],
        ),
        (
            json!({"type": "x", "data": {"currency": "eur"}}),
            &["group", "no-coupon"],
        ),
        (
            json!({"type": "x", "data": {"currency": "eur", "test": true}}),
            &["no-coupon"],
        ),
        (
            json!({"type": "x", "source": "shop", "data": {"coupon": 1}}),
            &["group"],
        ),
        (json!({"type": "x", "data": [1, 2]}), &["no-coupon"]),
    ];
    for (event, expected) in cases {
        let got = matched(&engine, &line(tenant, event.clone()));
        assert_eq!(got, *expected, "{event}");
    }
}

#[test]
fn matches_come_out_in_dispatch_order() {
    let (engine, tenant) = engine_with(&[
        json!({"name": "b-normal", "event_types": ["a"]}),
        json!({"name": "a-normal", "event_types": ["a", "#"]}),
        json!({"name": "z-critical", "event_types": ["a"], "priority": "critical"}),
        json!({"name": "low", "event_types": ["#"], "priority": "low"}),
        json!({"name": "high", "event_types": ["a"], "priority": "high"}),
        json!({"name": "minus", "event_types": ["a"], "priority": -1}),
    ]);
    assert_eq!(
        matched(&engine, &line(tenant, json!({"type": "a"}))),
        ["minus", "z-critical", "high", "a-normal", "b-normal", "low"]
    );
}

#[test]
fn updates_replace_disable_delete_and_restore() {
    let engine = Engine::new();
    let tenant = TenantId::new();
    let id = ActionId::new();
    let event = line(tenant, json!({"type": "a.b", "data": {"n": 1}}));
    engine.put(
        tenant,
        id,
        &matching(json!({"name": "x", "event_types": ["a.b"]})),
    );
    assert_eq!(matched(&engine, &event), ["x"]);
    // Changed: another pattern and a condition.
    engine.put(
        tenant,
        id,
        &matching(json!({"name": "x", "event_types": ["a.*"],
        "conditions": [{"path": "data.n", "op": "equals", "value": 2}]})),
    );
    assert!(matched(&engine, &event).is_empty());
    engine.put(
        tenant,
        id,
        &matching(json!({"name": "x2", "event_types": ["#"]})),
    );
    assert_eq!(matched(&engine, &event), ["x2"]);
    assert_eq!(engine.len(), 1);
    engine.remove(tenant, id);
    assert!(matched(&engine, &event).is_empty());
    assert_eq!(engine.len(), 0);
    engine.remove(tenant, id);
    engine.put(
        tenant,
        id,
        &matching(json!({"name": "x", "event_types": ["a.b"]})),
    );
    assert_eq!(matched(&engine, &event), ["x"]);
}

#[test]
fn a_load_split_over_loaders_matches_like_one_at_a_time() {
    let tenants: Vec<TenantId> = (0..40).map(|_| TenantId::new()).collect();
    let specs: Vec<(TenantId, ActionId, MatchSpec)> = tenants
        .iter()
        .enumerate()
        .flat_map(|(t, tenant)| {
            (0..5).map(move |a| {
                let spec = matching(json!({
                    "name": format!("a{a}"), "event_types": [if a % 2 == 0 { "x.*" } else { "x.y" }],
                    "conditions": [{"path": "data.n", "op": "gte", "value": a}],
                    "priority": (t * 7 + a) % 3
                }));
                (*tenant, ActionId::new(), spec)
            })
        })
        .collect();
    let one_by_one = Engine::new();
    for (tenant, id, spec) in &specs {
        one_by_one.put(*tenant, *id, spec);
    }
    let split = Engine::new();
    split.put(
        tenants[0],
        ActionId::new(),
        &matching(json!({"name": "gone", "event_types": ["#"]})),
    );
    let mut loaders = split.loaders(3);
    for (tenant, id, spec) in &specs {
        let part = loaders[0].part_of(*tenant);
        loaders[part].add(*tenant, *id, spec);
    }
    for loader in loaders {
        loader.finish();
    }
    assert_eq!(split.len(), specs.len(), "the load replaced what was there");
    for tenant in &tenants {
        let event = line(*tenant, json!({"type": "x.y", "data": {"n": 3}}));
        assert_eq!(matched(&split, &event), matched(&one_by_one, &event));
    }

    // Many lines of many tenants through the pipeline, in and out of order of arrival, with
    // unknown tenants and changes outside the base among them: each as matched on its own.
    let unknown = TenantId::new();
    one_by_one.remove(specs[0].0, specs[0].1);
    let lines: Vec<String> = (0..300)
        .map(|i| {
            let tenant = if i % 17 == 0 {
                unknown
            } else {
                tenants[i * 7 % 40]
            };
            let event_type = ["x.y", "x.z", "q"][i % 3];
            line(tenant, json!({"type": event_type, "data": {"n": i % 6}}))
        })
        .collect();
    for engine in [&split, &one_by_one] {
        let mut pipelined = Vec::new();
        engine.match_lines_pipelined(&lines, |result| pipelined.push(result.unwrap().to_vec()));
        assert_eq!(pipelined.len(), lines.len());
        for (line, matches) in lines.iter().zip(&pipelined) {
            let mut alone = Vec::new();
            engine.match_json(line, &mut alone).unwrap();
            assert_eq!(matches, &alone, "{line}");
        }
    }
}

/// Many changes to a tenant, folded into its base again and again, end where a load of the
/// final set of actions starts.
#[test]
fn changes_folded_into_the_base_match_like_a_load() {
    let tenant = TenantId::new();
    let types = ["x.a", "x.b", "y.a", "y.b"];
    let action = |i: usize, round: usize| {
        let patterns = match i % 5 {
            0 => json!([types[i % 4]]),
            1 => json!(["x.*"]),
            2 => json!([types[(i + 1) % 4], types[(i + 2) % 4]]),
            3 => json!(["#"]),
            _ => json!(["*.a"]),
        };
        let mut spec = json!({
            "name": format!("a{:03}", i % 37), "event_types": patterns,
            "priority": (i * 7 + round) % 4,
            "conditions": [{"path": "data.n", "op": "gte", "value": i % 9}],
        });
        if i.is_multiple_of(6) {
            spec["source"] = json!("s1");
        }
        if i.is_multiple_of(4) {
            spec["conditions"] = json!([{"any": [
                {"path": "data.n", "op": "lt", "value": 3},
                {"not": {"path": "data.tag", "op": "equals", "value": format!("t{}", i % 3)}},
            ]}]);
        }
        matching(spec)
    };
    let ids: Vec<ActionId> = (0..150).map(|_| ActionId::new()).collect();
    let live = Engine::new();
    let mut final_set = std::collections::BTreeMap::new();
    for round in 0..3 {
        for (i, id) in ids.iter().enumerate() {
            match (i + round) % 7 {
                0 => {
                    live.remove(tenant, *id);
                    final_set.remove(&i);
                }
                _ => {
                    live.put(tenant, *id, &action(i, round));
                    final_set.insert(i, action(i, round));
                }
            }
        }
    }
    let loaded = Engine::new();
    let specs: Vec<_> = final_set
        .iter()
        .map(|(i, spec)| (tenant, ids[*i], spec.clone()))
        .collect();
    loaded.load(&specs);
    assert_eq!(live.len(), loaded.len());
    assert_eq!(live.costly_parts(tenant), loaded.costly_parts(tenant));
    for event_type in types.iter().chain(&["z", "x.a.b"]) {
        for n in [0, 2, 5, 9] {
            for source in ["s1", "s2"] {
                for tag in ["t0", "t1"] {
                    let event = line(
                        tenant,
                        json!({"type": event_type, "source": source, "data": {"n": n, "tag": tag}}),
                    );
                    assert_eq!(matched(&live, &event), matched(&loaded, &event), "{event}");
                }
            }
        }
    }
}

#[test]
fn load_replaces_everything() {
    let engine = Engine::new();
    let tenant = TenantId::new();
    engine.put(
        tenant,
        ActionId::new(),
        &matching(json!({"name": "old", "event_types": ["a"]})),
    );
    let specs = [
        spec(json!({"name": "n1", "event_types": ["a"]})),
        spec(json!({"name": "n2", "event_types": ["a.*", "a"]})),
    ];
    engine.load(
        &specs
            .iter()
            .map(|s| (tenant, ActionId::new(), MatchSpec::from(s)))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        matched(&engine, &line(tenant, json!({"type": "a"}))),
        ["n1", "n2"]
    );
    assert_eq!(engine.len(), 2);
    assert_eq!(engine.costly_parts(tenant), 1);
}

#[test]
fn budgets_count_wildcards_and_regexes() {
    let (engine, tenant) = engine_with(&[
        json!({"name": "a", "event_types": ["x.*", "y", "#"]}),
        json!({"name": "b", "event_types": ["y"], "conditions": [{"any": [{"path": "data.s", "op": "matches", "value": "^a"}]}]}),
    ]);
    assert_eq!(engine.costly_parts(tenant), 3);
}

#[test]
fn explain_names_what_held_and_what_failed() {
    let action = spec(
        json!({"name": "x", "event_types": ["order.*", "user.created"], "source": "shop",
        "conditions": [{"path": "data.amount", "op": "gt", "value": 100},
                       {"any": [{"path": "data.currency", "op": "equals", "value": "usd"}]}]}),
    );
    let event_line = line(
        TenantId::new(),
        json!({"type": "order.paid", "source": "shop",
        "data": {"amount": 50, "currency": "usd"}}),
    );
    let event = EventRef::parse(&event_line).unwrap();
    let report = explain::explain(&action, true, &event).unwrap();
    assert_eq!(report["matched"], false);
    assert_eq!(report["event_type"]["held"], true);
    assert_eq!(
        report["event_type"]["patterns"][0],
        json!({"pattern": "order.*", "held": true})
    );
    assert_eq!(report["event_type"]["patterns"][1]["held"], false);
    assert_eq!(report["source"]["held"], true);
    assert_eq!(report["conditions"][0]["held"], false);
    assert_eq!(report["conditions"][0]["actual"], json!([50.0]));
    assert_eq!(report["conditions"][1]["held"], true);
    assert_eq!(report["conditions"][1]["any"][0]["held"], true);
    let disabled = explain::explain(&action, false, &event).unwrap();
    assert_eq!(disabled["live"], false);
}

#[test]
fn readers_see_a_consistent_index_while_writers_change_it() {
    let engine = std::sync::Arc::new(Engine::new());
    let tenant = TenantId::new();
    let event = line(tenant, json!({"type": "a"}));
    engine.put(
        tenant,
        ActionId::new(),
        &matching(json!({"name": "stable", "event_types": ["a"]})),
    );
    let writer = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            for i in 0..2000 {
                let id = ActionId::new();
                engine.put(
                    tenant,
                    id,
                    &matching(json!({"name": format!("t{i}"), "event_types": ["a"]})),
                );
                engine.remove(tenant, id);
            }
        })
    };
    for _ in 0..2000 {
        let mut out = Vec::new();
        engine.match_json(&event, &mut out).unwrap();
        assert!(out.len() <= 2, "{out:?}");
        // The writer may have removed the other one since; the stable one is always there.
        let names: Vec<String> = out
            .iter()
            .filter_map(|m| engine.action_name(tenant, m.id))
            .collect();
        assert!(names.contains(&"stable".to_owned()));
    }
    writer.join().unwrap();
    assert_eq!(matched(&*engine, &event), ["stable"]);
}

#[test]
fn loaded_actions_share_identical_leaves_without_mixing_results() {
    let engine = Engine::new();
    let tenant = TenantId::new();
    let specs = [
        spec(
            json!({"name": "a", "event_types": ["#"], "conditions": [{"path": "data.c", "op": "equals", "value": "usd"}]}),
        ),
        spec(
            json!({"name": "b", "event_types": ["#"], "conditions": [{"path": "data.c", "op": "equals", "value": "usd"},
                                                                       {"path": "data.n", "op": "gt", "value": 5}]}),
        ),
        spec(
            json!({"name": "c", "event_types": ["#"], "conditions": [{"not": {"path": "data.c", "op": "equals", "value": "usd"}}]}),
        ),
        spec(
            json!({"name": "d", "event_types": ["#"], "conditions": [{"path": "data.c", "op": "equals", "value": "eur"}]}),
        ),
    ];
    engine.load(
        &specs
            .iter()
            .map(|s| (tenant, ActionId::new(), MatchSpec::from(s)))
            .collect::<Vec<_>>(),
    );
    let cases: &[(Value, &[&str])] = &[
        (
            json!({"type": "x", "data": {"c": "usd", "n": 9}}),
            &["a", "b"],
        ),
        (json!({"type": "x", "data": {"c": "usd", "n": 1}}), &["a"]),
        (json!({"type": "x", "data": {"c": "eur"}}), &["c", "d"]),
        (json!({"type": "x"}), &["c"]),
    ];
    for (event, expected) in cases {
        assert_eq!(
            matched(&engine, &line(tenant, event.clone())),
            *expected,
            "{event}"
        );
    }
    // A later put gets fresh slots and still agrees.
    engine.put(
        tenant,
        ActionId::new(),
        &matching(json!({"name": "e", "event_types": ["#"],
        "conditions": [{"path": "data.c", "op": "equals", "value": "usd"}]})),
    );
    assert_eq!(
        matched(
            &engine,
            &line(tenant, json!({"type": "x", "data": {"c": "usd"}}))
        ),
        ["a", "e"]
    );
}

#[test]
fn index_bytes_follow_the_actions_held() {
    let engine = Engine::new();
    assert_eq!(engine.index_bytes(), 0);
    let tenant = TenantId::new();
    let specs: Vec<_> = (0..1000)
        .map(|i| {
            let spec = matching(json!({
                "name": format!("action-{i:04}"), "event_types": [format!("entity{}.created", i % 20)],
                "conditions": [{"path": "data.amount", "op": "gte", "value": i}],
            }));
            (tenant, ActionId::new(), spec)
        })
        .collect();
    engine.load(&specs);
    let per_action = engine.index_bytes() / 1000;
    // Fixed fields (36), a name (11), a node (8), a leaf (40), postings and an id (24), a share
    // of the type table: well above 100 bytes, far below a kilobyte.
    assert!(
        (100..400).contains(&per_action),
        "{per_action} bytes per action"
    );
    engine.load(&specs[..10]);
    assert!(
        engine.index_bytes() < 10 * 1000,
        "a smaller load holds less"
    );
}

#[test]
fn an_engine_knows_which_tenants_have_sync_actions() {
    let (both, tenant) = engine_with(&[
        json!({"name": "a", "event_types": ["x"], "mode": "sync"}),
        json!({"name": "b", "event_types": ["y"]}),
    ]);
    let other = TenantId::new();
    for engine in [&both.loaded, &both.put] {
        assert!(engine.has_sync_actions(tenant));
        assert!(!engine.has_sync_actions(other));
    }
    // Replacing the sync action by an async one, and taking it out, both count.
    let (only_async, async_tenant) = engine_with(&[json!({"name": "b", "event_types": ["y"]})]);
    assert!(!only_async.loaded.has_sync_actions(async_tenant));
    let id = ActionId::new();
    both.put.put(
        other,
        id,
        &matching(json!({"name": "s", "event_types": ["x"], "mode": "sync"})),
    );
    assert!(both.put.has_sync_actions(other));
    both.put.put(
        other,
        id,
        &matching(json!({"name": "s", "event_types": ["x"]})),
    );
    assert!(!both.put.has_sync_actions(other));
    both.put.put(
        other,
        id,
        &matching(json!({"name": "s", "event_types": ["x"], "mode": "sync"})),
    );
    both.put.remove(other, id);
    assert!(!both.put.has_sync_actions(other));
}
