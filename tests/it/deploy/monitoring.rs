//! What the chart gives Prometheus and Grafana: the ServiceMonitor or PodMonitor (and the
//! `job` label every alert rule and dashboard selects on), the PrometheusRule, and the
//! dashboards' ConfigMaps with the label the Grafana sidecar looks for.

use serde_json::Value;

use super::{Case, FULLNAME, json_files, root, text};

/// The components Prometheus scrapes, each as `job="herald-<component>"`.
const SCRAPED: [&str; 4] = ["ingest", "matcher", "executor", "scheduler"];

/// ServiceMonitor, PodMonitor, PrometheusRule and dashboards as the values ask, with their
/// extra labels.
pub(super) fn assert_monitoring(case: &Case) {
    let metrics = &case.values["metrics"];
    assert!(
        !(metrics["serviceMonitor"]["enabled"] == true && metrics["podMonitor"]["enabled"] == true),
        "{}: the schema should refuse both monitors (every pod would be scraped twice)",
        case.name
    );
    let services: Vec<&Value> = case.all("Service");
    let service_monitors = case.all("ServiceMonitor");
    assert_eq!(
        service_monitors.len(),
        usize::from(metrics["serviceMonitor"]["enabled"] == true),
        "{}: ServiceMonitor",
        case.name
    );
    for monitor in service_monitors {
        labels_include(
            case,
            monitor,
            &metrics["serviceMonitor"]["labels"],
            "ServiceMonitor",
        );
        let endpoint = &monitor["spec"]["endpoints"][0];
        assert_eq!(endpoint["port"], "metrics");
        // It selects the four Services, each of which has a metrics port.
        let selected = selected(&monitor["spec"]["selector"], services.iter().copied());
        assert_eq!(
            selected.len(),
            4,
            "{}: Services the ServiceMonitor selects",
            case.name
        );
        assert_jobs(case, "ServiceMonitor", endpoint, "service", &selected);
    }

    // A PodMonitor selects pods: the four Deployments' pod templates, not the migration Job's.
    let pods: Vec<&Value> = case
        .all("Deployment")
        .into_iter()
        .chain(case.all("Job"))
        .map(|workload| &workload["spec"]["template"])
        .collect();
    let pod_monitors = case.all("PodMonitor");
    assert_eq!(
        pod_monitors.len(),
        usize::from(metrics["podMonitor"]["enabled"] == true),
        "{}: PodMonitor",
        case.name
    );
    for monitor in pod_monitors {
        labels_include(
            case,
            monitor,
            &metrics["podMonitor"]["labels"],
            "PodMonitor",
        );
        let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
        assert_eq!(endpoint["port"], "metrics");
        assert_eq!(endpoint["path"], "/metrics");
        let selected = selected(&monitor["spec"]["selector"], pods.iter().copied());
        assert_eq!(
            selected.len(),
            4,
            "{}: pods the PodMonitor selects (the four services', not the migration's)",
            case.name
        );
        for pod in &selected {
            let ports = pod["spec"]["containers"][0]["ports"]
                .as_array()
                .expect("ports");
            assert!(
                ports.iter().any(|p| p["name"] == "metrics"),
                "{}: a selected pod has no metrics port",
                case.name
            );
        }
        assert_jobs(case, "PodMonitor", endpoint, "pod", &selected);
    }

    let rules = case.all("PrometheusRule");
    assert_eq!(
        rules.len(),
        usize::from(metrics["prometheusRule"]["enabled"] == true),
        "{}: PrometheusRule",
        case.name
    );
    for rule in rules {
        labels_include(
            case,
            rule,
            &metrics["prometheusRule"]["labels"],
            "PrometheusRule",
        );
    }
    assert_dashboards(case);
}

fn labels_include(case: &Case, object: &Value, wanted: &Value, what: &str) {
    for (key, value) in wanted.as_object().expect("labels") {
        assert_eq!(
            &object["metadata"]["labels"][key], value,
            "{}: {what} label {key}",
            case.name
        );
    }
}

/// The objects a label selector (matchLabels and matchExpressions) picks.
fn selected<'a>(selector: &Value, objects: impl Iterator<Item = &'a Value>) -> Vec<&'a Value> {
    let matches = |labels: &Value| {
        let by_labels = selector["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| &labels[k] == v);
        let by_expressions = selector["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                let value = &labels[text(e, "/key")];
                let listed = e["values"]
                    .as_array()
                    .is_some_and(|values| values.contains(value));
                match text(e, "/operator") {
                    "In" => listed,
                    "NotIn" => !listed,
                    "Exists" => !value.is_null(),
                    "DoesNotExist" => value.is_null(),
                    other => panic!("matchExpressions operator {other}"),
                }
            });
        by_labels && by_expressions
    };
    objects
        .filter(|o| matches(&o["metadata"]["labels"]))
        .collect()
}

/// Every alert rule and dashboard selects targets by `job="herald-<component>"` (the job
/// names of deploy/prometheus/prometheus.yml). Without a relabeling, prometheus-operator
/// names the job after the Service (or the PodMonitor), which matches only by accident for a
/// release called "herald": so the endpoint's relabelings are applied, as Prometheus would,
/// to the `__meta_kubernetes_<role>_label_*` labels of each selected object.
fn assert_jobs(case: &Case, kind: &str, endpoint: &Value, role: &str, selected: &[&Value]) {
    let what = format!("{}: {kind}", case.name);
    let prometheus_yml =
        std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml")).expect("read");
    let mut jobs = Vec::new();
    for object in selected {
        let mut meta = std::collections::BTreeMap::new();
        for (key, value) in object["metadata"]["labels"].as_object().expect("labels") {
            let name: String = key
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            meta.insert(
                format!("__meta_kubernetes_{role}_label_{name}"),
                value.as_str().expect("a label value").to_owned(),
            );
        }
        jobs.push(relabeled_job(endpoint, &meta, &what));
    }
    jobs.sort();
    let mut expected: Vec<String> = SCRAPED.iter().map(|c| format!("herald-{c}")).collect();
    expected.sort();
    assert_eq!(jobs, expected, "{what}: the job label of each target");
    for job in &expected {
        assert!(
            prometheus_yml.contains(&format!("job_name: {job}")),
            "{what}: deploy/prometheus/prometheus.yml has no job {job}: the chart and the compose \
             stack would name targets differently"
        );
    }
}

/// The `job` label after the endpoint's relabelings that set it (Prometheus' `replace`
/// action; the chart uses no other form, and anything else fails here rather than pass
/// unread).
fn relabeled_job(
    endpoint: &Value,
    meta: &std::collections::BTreeMap<String, String>,
    what: &str,
) -> String {
    let mut job = None;
    for rule in endpoint["relabelings"].as_array().into_iter().flatten() {
        if rule["targetLabel"] != "job" {
            continue;
        }
        let action = rule["action"].as_str().unwrap_or("replace");
        assert_eq!(
            action.to_lowercase(),
            "replace",
            "{what}: job relabeling action"
        );
        let regex = rule["regex"].as_str().unwrap_or("(.*)");
        assert_eq!(
            regex, "(.*)",
            "{what}: job relabeling regex (only the default is read here)"
        );
        let separator = rule["separator"].as_str().unwrap_or(";");
        let source: Vec<&str> = rule["sourceLabels"]
            .as_array()
            .expect("sourceLabels")
            .iter()
            .map(|l| {
                let l = l.as_str().expect("a label name");
                meta.get(l).map_or("", String::as_str)
            })
            .collect();
        let value = source.join(separator);
        let replacement = rule["replacement"].as_str().unwrap_or("$1");
        job = Some(replacement.replace("${1}", &value).replace("$1", &value));
    }
    job.unwrap_or_else(|| panic!("{what}: no relabeling sets job"))
}

/// One ConfigMap per dashboard, with the sidecar's label (key and value as set, and no
/// leftover default key when another one is chosen) and the extra labels.
fn assert_dashboards(case: &Case) {
    let values = &case.values["dashboards"];
    let dashboards: Vec<&Value> = case
        .all("ConfigMap")
        .into_iter()
        .filter(|c| c["metadata"]["name"] != format!("{FULLNAME}-config").as_str())
        .collect();
    let files = json_files(&root().join("helm/herald/files/dashboards"));
    let enabled = values["enabled"] == true;
    assert_eq!(
        dashboards.len(),
        if enabled { files.len() } else { 0 },
        "{}: a dashboard ConfigMap per files/dashboards/*.json",
        case.name
    );
    let sidecar_label = text(values, "/sidecarLabel");
    for dashboard in dashboards {
        let labels = &dashboard["metadata"]["labels"];
        assert_eq!(
            labels[sidecar_label], values["sidecarLabelValue"],
            "{}: the sidecar label {sidecar_label}",
            case.name
        );
        if sidecar_label != "grafana_dashboard"
            && values["labels"].get("grafana_dashboard").is_none()
        {
            assert!(
                labels.get("grafana_dashboard").is_none(),
                "{}: the default sidecar label stayed beside {sidecar_label}",
                case.name
            );
        }
        labels_include(case, dashboard, &values["labels"], "dashboard");
        let data = dashboard["data"].as_object().expect("data");
        assert_eq!(data.len(), 1);
        let (file, json) = data.iter().next().expect("one file");
        let expected =
            std::fs::read_to_string(root().join("helm/herald/files/dashboards").join(file))
                .unwrap_or_else(|e| panic!("{}: {file}: {e}", case.name));
        let parsed: Value = serde_json::from_str(json.as_str().expect("text")).expect("JSON");
        assert_eq!(
            parsed,
            serde_json::from_str::<Value>(&expected).expect("JSON")
        );
    }
}
