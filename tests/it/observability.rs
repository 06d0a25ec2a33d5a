//! Operating Herald: the Grafana dashboards and Prometheus alert rules in `deploy/` are complete
//! and ask only for metrics the services export, the rules pass promtool's checks and their own
//! unit tests, every service's `/metrics` passes `promtool check metrics`, and a real Prometheus
//! scraping a busy sandbox answers every dashboard query with data.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use herald_common::broker::topology::EVENTS_EXCHANGE;
use herald_common::config::{Config, ServiceName};
use herald_common::metrics::{Metrics, Stage};
use herald_tests::sandbox::{SandboxOptions, TestTenant};
use herald_tests::{Receiver, Reply, Sandbox, eventually};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};
use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::webhook_action;

const DASHBOARDS: [&str; 6] = [
    "overview",
    "ingest",
    "pipeline",
    "delivery",
    "scheduler",
    "circuits",
];

const SERVICES: [ServiceName; 4] = [
    ServiceName::Ingest,
    ServiceName::Matcher,
    ServiceName::Executor,
    ServiceName::Scheduler,
];

/// Series that a short test cannot bring into being, each with the reason: a dashboard query
/// naming one may go without data in the real-Prometheus test, but only while `Metrics` does
/// not create the series up front (at zero), so the exception lapses by itself once it does.
const NO_DATA_EXPECTED: &[(&str, &str)] = &[
    (
        "herald_redeliveries_total",
        "needs a consumer to die or lose its channel while holding unacknowledged messages",
    ),
    (
        "herald_executions_recovered_total",
        "needs an executor to die mid-attempt (its 300 s lease must then end) or a job lost for \
         scheduler.overdue_after_s (15 min)",
    ),
    (
        "herald_retention_deleted_rows_total",
        "retention deletes only rows older than the retention period (30 days)",
    ),
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn dashboard(name: &str) -> Value {
    let path = deploy_dir().join(format!("grafana/{name}.json"));
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel of a dashboard, including those inside rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn collect<'a>(list: &'a Value, into: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            into.push(panel);
            collect(&panel["panels"], into);
        }
    }
    let mut all = Vec::new();
    collect(&dashboard["panels"], &mut all);
    all
}

/// One query of one panel.
#[derive(Debug, Clone)]
struct PanelQuery {
    dashboard: &'static str,
    panel: String,
    expr: String,
}

fn queries() -> Vec<PanelQuery> {
    let mut all = Vec::new();
    for name in DASHBOARDS {
        let dashboard = dashboard(name);
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                all.push(PanelQuery {
                    dashboard: name,
                    panel: panel["title"].as_str().unwrap_or_default().to_owned(),
                    expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    all
}

/// Every selector of a query, plain or inside a range.
#[derive(Default)]
struct Selectors(Vec<VectorSelector>);

impl ExprVisitor for Selectors {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::VectorSelector(selector) => self.0.push(selector.clone()),
            Expr::MatrixSelector(matrix) => self.0.push(matrix.vs.clone()),
            _ => {}
        }
        Ok(true)
    }
}

fn parse(query: &str) -> Result<Vec<VectorSelector>, String> {
    let expr = promql_parser::parser::parse(query)?;
    let mut selectors = Selectors::default();
    let Ok(_) = walk_expr(&mut selectors, &expr);
    Ok(selectors.0)
}

/// A collector that only describes a name: registering it fails when the registry already has
/// a family of that name.
struct Probe(Desc);

impl Collector for Probe {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        Vec::new()
    }
}

/// The series names the services export, from the one place they are declared: `Metrics`,
/// which every service builds (a histogram `x` is exported as `x_bucket`, `x_sum`, `x_count`),
/// and `up`, which Prometheus adds to every target.
struct Exported {
    metrics: Metrics,
    /// The type of each family that has series in a fresh `Metrics` (a labelled family shows
    /// only once a label set is used).
    gathered: BTreeMap<String, MetricType>,
}

impl Exported {
    fn new() -> Self {
        let metrics = Metrics::new("test");
        let gathered = metrics
            .registry()
            .gather()
            .iter()
            .map(|family| (family.name().to_owned(), family.get_field_type()))
            .collect();
        Self { metrics, gathered }
    }

    /// Whether `Metrics` has a family named `name`, with series yet or not.
    fn registered(&self, name: &str) -> bool {
        if self.gathered.contains_key(name) {
            return true;
        }
        let desc = Desc::new(name.into(), "probe".into(), Vec::new(), Default::default())
            .expect("a valid metric name");
        let probe = Probe(desc.clone());
        match self.metrics.registry().register(Box::new(probe)) {
            Ok(()) => {
                self.metrics
                    .registry()
                    .unregister(Box::new(Probe(desc)))
                    .expect("unregister the probe");
                false
            }
            Err(_) => true,
        }
    }

    fn is_histogram(&self, family: &str) -> Option<bool> {
        self.gathered
            .get(family)
            .map(|kind| *kind == MetricType::HISTOGRAM)
    }

    fn exports(&self, series: &str) -> bool {
        if series == "up" {
            return true;
        }
        if self.registered(series) {
            return self.is_histogram(series) != Some(true);
        }
        ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            series.strip_suffix(suffix).is_some_and(|family| {
                // A family without series yet shows no type: its name must do.
                self.registered(family) && self.is_histogram(family) != Some(false)
            })
        })
    }
}

/// A dashboard query as the static checks parse it: only the interval replaced, so that the
/// `$namespace` and `$pod` filters can be seen in the matchers.
fn with_interval(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
}

/// A dashboard query as Grafana sends it with "All" picked for every variable.
fn as_sent(expr: &str) -> String {
    with_interval(expr)
        .replace("$namespace", ".*")
        .replace("$pod", ".*")
}

#[test]
fn dashboards_are_complete_and_ask_only_for_exported_metrics() {
    let exported = Exported::new();
    let mut problems = Vec::new();
    let files: BTreeSet<String> = std::fs::read_dir(deploy_dir().join("grafana"))
        .expect("deploy/grafana")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    let listed: BTreeSet<String> = DASHBOARDS.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        files, listed,
        "every dashboard in deploy/grafana is checked here"
    );
    let mut uids = BTreeSet::new();
    for name in DASHBOARDS {
        let dashboard = dashboard(name);
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        if uid.is_empty() || !uids.insert(uid.to_owned()) {
            problems.push(format!("{name}: missing or repeated uid {uid:?}"));
        }
        let variables: BTreeMap<&str, &Value> = dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["name"].as_str()?, v)))
            .collect();
        match variables.get("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            _ => problems.push(format!("{name}: no Prometheus `datasource` variable")),
        }
        for (variable, wanted) in [
            ("namespace", "label_values(herald_build_info, namespace)"),
            (
                "pod",
                "label_values(herald_build_info{namespace=~\"$namespace\"}, pod)",
            ),
        ] {
            match variables.get(variable) {
                Some(v)
                    if v["type"] == "query"
                        && v["query"]["query"] == wanted
                        && v["datasource"]["uid"] == "${datasource}" => {}
                _ => problems.push(format!("{name}: no `{variable}` variable asking {wanted}")),
            }
        }
        let mut ids = BTreeSet::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            let at = format!("{name} / {title}");
            if panel["type"] == "row" {
                continue;
            }
            if !ids.insert(panel["id"].as_i64().unwrap_or(-1)) {
                problems.push(format!("{at}: missing or repeated id"));
            }
            if panel["description"].as_str().unwrap_or_default().len() < 20 {
                problems.push(format!("{at}: no description"));
            }
            if panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
            {
                problems.push(format!("{at}: no unit"));
            }
            if panel["datasource"]["uid"] != "${datasource}" {
                problems.push(format!("{at}: not on the `datasource` variable"));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{at}: no query"));
            }
            for target in &targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                check_query(&exported, &at, expr, &mut problems);
            }
        }
    }
    assert!(problems.is_empty(), "dashboards:\n{}", problems.join("\n"));
}

/// A dashboard query parses, filters every selector by the `namespace` and `pod` variables,
/// takes every range as `$__rate_interval` and names only exported series.
fn check_query(exported: &Exported, at: &str, expr: &str, problems: &mut Vec<String>) {
    // Ranges are the only brackets these queries have (no regex uses them).
    let mut rest = expr;
    while let Some(start) = rest.find('[') {
        let end = rest[start..]
            .find(']')
            .map_or(rest.len(), |e| start + e + 1);
        if &rest[start..end] != "[$__rate_interval]" {
            problems.push(format!(
                "{at}: range {} instead of [$__rate_interval] in {expr}",
                &rest[start..end]
            ));
        }
        rest = &rest[end..];
    }
    let selectors = match parse(&with_interval(expr)) {
        Ok(selectors) => selectors,
        Err(error) => {
            problems.push(format!("{at}: {expr} does not parse: {error}"));
            return;
        }
    };
    for selector in selectors {
        let name = selector.name.clone().unwrap_or_default();
        if !exported.exports(&name) {
            problems.push(format!("{at}: {name:?} is not a series Herald exports"));
        }
        for (label, value) in [("namespace", "$namespace"), ("pod", "$pod")] {
            let filtered = selector
                .matchers
                .matchers
                .iter()
                .any(|m| m.name == label && m.value == value && matches!(m.op, MatchOp::Re(_)));
            if !filtered {
                problems.push(format!(
                    "{at}: {name} is not filtered by {label}=~\"{value}\""
                ));
            }
        }
    }
}

/// Runs promtool in `deploy/prometheus` with `input` on its standard input.
fn promtool(args: &[&str], input: &str) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(deploy_dir().join("prometheus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool cannot run ({e}): `cargo xtask test` installs it (Debian package \
                 prometheus)"
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to promtool");
    child.wait_with_output().expect("promtool finishes")
}

fn assert_succeeded(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<AlertRule>,
}

#[derive(Deserialize)]
struct AlertRule {
    alert: String,
    expr: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RuleTests {
    tests: Vec<RuleTest>,
}

#[derive(Deserialize)]
struct RuleTest {
    #[serde(default)]
    alert_rule_test: Vec<AlertCase>,
}

#[derive(Deserialize)]
struct AlertCase {
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<serde_norway::Value>,
}

/// The anchors of `deploy/README.md`'s headings, as a Markdown renderer makes them.
fn readme_anchors() -> BTreeSet<String> {
    read(&deploy_dir().join("README.md"))
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn alert_rules_pass_promtool_and_each_has_a_firing_and_a_quiet_test() {
    assert_succeeded(
        "promtool check rules alerts.yml",
        &promtool(&["check", "rules", "alerts.yml"], ""),
    );
    assert_succeeded(
        "promtool test rules alerts_test.yml",
        &promtool(&["test", "rules", "alerts_test.yml"], ""),
    );

    let dir = deploy_dir().join("prometheus");
    let rules: RuleFile =
        serde_norway::from_str(&read(&dir.join("alerts.yml"))).expect("alerts.yml is YAML");
    let tests: RuleTests = serde_norway::from_str(&read(&dir.join("alerts_test.yml")))
        .expect("alerts_test.yml is YAML");
    let exported = Exported::new();
    let anchors = readme_anchors();
    let mut problems = Vec::new();
    let alerts: Vec<&AlertRule> = rules.groups.iter().flat_map(|g| &g.rules).collect();
    assert!(alerts.len() >= 7, "only {} alert rules", alerts.len());
    for rule in alerts {
        let at = &rule.alert;
        match parse(&rule.expr) {
            Ok(selectors) => {
                for selector in selectors {
                    let name = selector.name.unwrap_or_default();
                    if !exported.exports(&name) {
                        problems.push(format!("{at}: {name:?} is not a series Herald exports"));
                    }
                }
            }
            Err(error) => problems.push(format!("{at}: does not parse: {error}")),
        }
        let severity = rule.labels.get("severity").map(String::as_str);
        if !matches!(severity, Some("critical" | "warning" | "info")) {
            problems.push(format!("{at}: severity {severity:?}"));
        }
        for annotation in ["summary", "description", "runbook"] {
            if rule
                .annotations
                .get(annotation)
                .is_none_or(|a| a.is_empty())
            {
                problems.push(format!("{at}: no {annotation}"));
            }
        }
        let runbook = rule.annotations.get("runbook").cloned().unwrap_or_default();
        match runbook.strip_prefix("deploy/README.md#") {
            Some(anchor) if anchors.contains(anchor) => {}
            _ => problems.push(format!(
                "{at}: runbook {runbook:?} is no heading of deploy/README.md"
            )),
        }
        let cases: Vec<&AlertCase> = tests
            .tests
            .iter()
            .flat_map(|t| &t.alert_rule_test)
            .filter(|c| c.alertname == rule.alert)
            .collect();
        if !cases.iter().any(|c| !c.exp_alerts.is_empty()) {
            problems.push(format!("{at}: no test where it fires"));
        }
        if !cases.iter().any(|c| c.exp_alerts.is_empty()) {
            problems.push(format!("{at}: no test where it stays quiet"));
        }
    }
    problems.dedup();
    assert!(problems.is_empty(), "alert rules:\n{}", problems.join("\n"));
}

/// Circuits that react within a test's patience.
fn quick_circuits(config: &mut Config) {
    config.executor.circuit_cooldown_ms = 1000;
    config.executor.circuit_sync_ms = 100;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_metrics_pass_promtool_check_metrics() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action("hook", "obs.checked", &receiver.url("/hook"), json!({})),
        )
        .await;
    // One event all the way through, so that the labelled series exist too.
    sandbox
        .event(&tenant, json!({"type": "obs.checked", "data": {}}))
        .await;
    eventually("the webhook", Duration::from_secs(20), || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    for service in SERVICES {
        for ops in sandbox.ops_addrs(service) {
            let text = sandbox.metrics_text(ops).await;
            assert!(text.contains("herald_build_info"), "{text}");
            let output = promtool(&["check", "metrics"], &text);
            assert_succeeded(&format!("promtool check metrics on {service:?}"), &output);
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(said.trim().is_empty(), "{service:?}: {said}");
        }
    }
    sandbox.stop().await;
}

/// A Prometheus server of the test's own, on a free loopback port with its data in a temporary
/// directory; killed and removed when dropped.
struct PrometheusServer {
    child: std::process::Child,
    dir: PathBuf,
    url: String,
    http: reqwest::Client,
}

impl PrometheusServer {
    /// Scrapes every service of `sandbox` each second as job `herald-<service>`, labelled
    /// `namespace="herald"` and `pod="herald-<service>-0"` as Kubernetes would, and evaluates
    /// the alert rules.
    async fn scraping(sandbox: &Sandbox) -> Self {
        let dir = std::env::temp_dir().join(format!("herald-prometheus-{}", sandbox.name));
        std::fs::create_dir_all(&dir).expect("create the Prometheus directory");
        let mut scrape_configs = String::new();
        for service in SERVICES {
            let name = service.as_str();
            let targets: Vec<String> = sandbox
                .ops_addrs(service)
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect();
            scrape_configs.push_str(&format!(
                "  - job_name: herald-{name}\n    static_configs:\n      - targets: [{}]\n        labels:\n          namespace: herald\n          pod: herald-{name}-0\n",
                targets.join(", ")
            ));
        }
        let rules = deploy_dir().join("prometheus/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n{scrape_configs}",
            rules.display()
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write the Prometheus configuration");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "prometheus cannot run ({e}): `cargo xtask test` installs it (Debian \
                     package prometheus)"
                )
            });
        let server = Self {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
            http: sandbox.http.clone(),
        };
        let ready = format!("{}/-/ready", server.url);
        eventually("Prometheus to be ready", Duration::from_secs(30), || {
            let (http, ready) = (server.http.clone(), ready.clone());
            async move {
                let response = http.get(&ready).send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
        server
    }

    /// The result of an instant query, as Prometheus's HTTP API gives it.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
            .expect("Prometheus reachable")
            .json()
            .await
            .expect("a JSON answer");
        assert_eq!(body["status"], "success", "{promql}: {body}");
        match body["data"]["resultType"].as_str() {
            Some("vector") => body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            Some("scalar") => vec![json!({"value": body["data"]["result"]})],
            other => panic!("{promql}: unexpected result type {other:?}"),
        }
    }

    /// Whether the query gives at least one sample that is a number (not NaN: a ratio or a
    /// quantile of nothing).
    async fn has_data(&self, promql: &str) -> bool {
        self.query(promql)
            .await
            .iter()
            .any(|sample| sample["value"][1].as_str().is_some_and(|v| v != "NaN"))
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An operator's retries, one by id (of a succeeded execution: a replay) and one by filter
/// (every failed execution, carried out by the scheduler).
async fn operator_retries(sandbox: &Sandbox, tenant: &TestTenant) {
    let key = Some(tenant.key.as_str());
    let id = eventually("a succeeded execution", Duration::from_secs(20), || async {
        let (status, page) = sandbox
            .call(
                reqwest::Method::GET,
                "/v1/executions?status=succeeded&limit=1",
                key,
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        page["data"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let (status, body) = sandbox
        .call(
            reqwest::Method::POST,
            &format!("/v1/executions/{id}/retry"),
            key,
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = sandbox
        .call(
            reqwest::Method::POST,
            "/v1/executions/retry",
            key,
            Some(json!({"status": "failed"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// Sends events until stopped, at most a minute: every round one for a healthy endpoint, one
/// for a failing one, and now and then one that ingest must refuse.
async fn keep_busy(http: reqwest::Client, url: String, key: String, stop: CancellationToken) {
    for n in 0..300 {
        let mut events = vec![
            json!({"type": "obs.ok", "data": {"n": n}}),
            json!({"type": "obs.failing", "data": {"n": n}}),
        ];
        if n % 10 == 0 {
            events.push(json!({"data": {"no": "type"}}));
        }
        for event in events {
            let _ = http.post(&url).bearer_auth(&key).json(&event).send().await;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Queries that must come to a value only a service's work produces, not a series standing at
/// zero: a dashboard query over a series nobody writes still has data. Waits for each up to
/// 30 s (the load is running); returns those that never got there.
async fn series_never_written(prometheus: &PrometheusServer) -> Vec<String> {
    let mut wanted = Vec::new();
    // The outbox only republishes what waited 30 s unmatched: the load never needs it.
    let busy = Stage::ALL.into_iter().filter(|s| *s != Stage::Outbox);
    for stage in busy.map(Stage::as_str) {
        for direction in ["in", "out"] {
            wanted.push(format!(
                r#"sum(herald_stage_messages_total{{stage="{stage}", direction="{direction}"}}) > 0"#
            ));
        }
        wanted.push(format!(
            r#"max(herald_stage_last_processed_timestamp_seconds{{stage="{stage}"}}) > 0"#
        ));
    }
    // Momentary gauges: the highest any scrape saw during the test (the healthy receiver
    // answers slowly, so attempts are out at most scrapes).
    for gauge in [
        r#"sum(herald_stage_in_flight{stage="executor"})"#,
        "sum(herald_destination_in_flight)",
    ] {
        wanted.push(format!("max_over_time(({gauge})[10m:1s]) > 0"));
    }
    for door in ["http", "broker"] {
        wanted.push(format!(
            r#"sum(herald_events_received_total{{door="{door}", result="accepted"}}) > 0"#
        ));
    }
    wanted
        .push(r#"sum(herald_events_received_total{door="broker", result="rejected"}) > 0"#.into());
    wanted.push(r#"sum(herald_http_requests_total{method="other"}) > 0"#.into());
    wanted.push("count(herald_db_pool_max_connections > 0) >= 4".into());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut still = Vec::new();
        for query in wanted {
            if prometheus.query(&query).await.is_empty() {
                still.push(query);
            }
        }
        wanted = still;
        if wanted.is_empty() || Instant::now() > deadline {
            break;
        }
        // Prometheus scrapes every second: nothing new before the next scrape.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Never a raw method as a label value, whatever a client sends.
    let raw = prometheus
        .query(
            r#"herald_http_requests_total{method!~"GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|other"}"#,
        )
        .await;
    if !raw.is_empty() {
        wanted.push(format!("methods outside the fixed set: {raw:?}"));
    }
    wanted
}

/// Once the load stops, every stage and destination count of work in flight comes back to
/// zero: what goes in is counted out or dropped, never left behind.
async fn nothing_left_in_flight(prometheus: &PrometheusServer) {
    eventually(
        "the in-flight gauges to come back to zero",
        Duration::from_secs(60),
        || async {
            let busy = prometheus
                .query("sum by (stage) (herald_stage_in_flight) != 0 or sum(herald_destination_in_flight) != 0")
                .await;
            busy.is_empty().then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_answers_every_dashboard_query() {
    let sandbox = Sandbox::with(SandboxOptions {
        configure: quick_circuits,
        ..SandboxOptions::default()
    })
    .await;
    let prometheus = PrometheusServer::scraping(&sandbox).await;
    let healthy = Receiver::start().await;
    // Slow enough that a scrape finds attempts in flight (an instant reply leaves the in-flight
    // gauges at zero at nearly every scrape), quick enough to keep the load flowing.
    healthy.fallback(Reply::status(200).after(Duration::from_millis(300)));
    let failing = Receiver::start().await;
    failing.fallback(Reply::status(500));
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action("ok", "obs.ok", &healthy.url("/hook"), json!({})),
        )
        .await;
    sandbox
        .action(
            &tenant,
            webhook_action(
                "failing",
                "obs.failing",
                &failing.url("/hook"),
                json!({"max_attempts": 2, "delays_s": [1]}),
            ),
        )
        .await;
    eventually(
        "Prometheus to scrape all four services",
        Duration::from_secs(20),
        || async {
            let up = prometheus.query(r#"up{job=~"herald-.*"} == 1"#).await;
            (up.len() == SERVICES.len()).then_some(())
        },
    )
    .await;

    let stop = CancellationToken::new();
    let load = tokio::spawn(keep_busy(
        sandbox.http.clone(),
        sandbox.api_url("/v1/events"),
        tenant.key.clone(),
        stop.clone(),
    ));
    // A message no consumer can use, straight on the broker, for a dead letter.
    sandbox
        .broker()
        .await
        .basic_publish(
            EVENTS_EXCHANGE.into(),
            "obs.ok".into(),
            BasicPublishOptions::default(),
            b"{not json",
            BasicProperties::default().with_content_type("application/json".into()),
        )
        .await
        .expect("publish");
    // And a good one, for the broker door's accepted count.
    let outside = json!({"type": "obs.ok", "tenant_id": tenant.id, "data": {"outside": true}});
    sandbox
        .broker()
        .await
        .basic_publish(
            EVENTS_EXCHANGE.into(),
            "obs.ok".into(),
            BasicPublishOptions::default(),
            outside.to_string().as_bytes(),
            BasicProperties::default()
                .with_content_type("application/json".into())
                .with_message_id("obs-outside-1".into()),
        )
        .await
        .expect("publish");
    // A method no route takes, which must not become a label value of its own.
    let _ = sandbox
        .http_request(
            reqwest::Method::from_bytes(b"BREW").expect("a method token"),
            "/v1/events",
            &tenant.key,
        )
        .send()
        .await;

    operator_retries(&sandbox, &tenant).await;

    let all = queries();
    let exported = Exported::new();
    let excepted = |q: &PanelQuery| {
        let names = parse(&as_sent(&q.expr)).expect("dashboard queries parse");
        names.iter().any(|selector| {
            let name = selector.name.as_deref().unwrap_or_default();
            NO_DATA_EXPECTED.iter().any(|(metric, _)| *metric == name)
                && !exported.gathered.contains_key(name)
        })
    };
    for query in all.iter().filter(|q| excepted(q)) {
        eprintln!(
            "not expected to have data: {} / {}: {}",
            query.dashboard, query.panel, query.expr
        );
    }
    let mut waiting: Vec<&PanelQuery> = all.iter().filter(|q| !excepted(q)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for query in waiting {
            if !prometheus.has_data(&as_sent(&query.expr)).await {
                still.push(query);
            }
        }
        waiting = still;
        if waiting.is_empty() || Instant::now() > deadline {
            break;
        }
        // Prometheus scrapes every second: nothing new before the next scrape.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let unwritten = series_never_written(&prometheus).await;
    stop.cancel();
    let _ = load.await;
    assert!(
        unwritten.is_empty(),
        "answered, but never with a value a service wrote:\n{}",
        unwritten.join("\n")
    );
    nothing_left_in_flight(&prometheus).await;
    let missing: Vec<String> = waiting
        .iter()
        .map(|q| format!("{} / {}: {}", q.dashboard, q.panel, q.expr))
        .collect();
    assert!(
        missing.is_empty(),
        "no data after a minute for:\n{}",
        missing.join("\n")
    );
    assert!(healthy.count() > 0 && failing.count() > 0);

    // The alert rules loaded into a real server evaluate without error.
    let rules: Value = prometheus
        .http
        .get(format!("{}/api/v1/rules", prometheus.url))
        .send()
        .await
        .expect("Prometheus reachable")
        .json()
        .await
        .expect("a JSON answer");
    let groups = rules["data"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!groups.is_empty(), "{rules}");
    for rule in groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
    {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    drop(prometheus);
    sandbox.stop().await;
}
