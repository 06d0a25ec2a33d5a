//! The deployment files, checked offline by tools that share no code with them: the Helm chart
//! (Helm's own lint and render, Kubernetes' and the CRDs' schemas, checkov), the compose stack
//! and the Dockerfile. The tools run from `tests/deploy/` (`cargo xtask test` installs them);
//! what they render is then loaded with Herald's own configuration loader, so a setting the
//! services would refuse fails here first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod monitoring;

use herald_common::broker::topology;
use herald_common::config::{Config, ServiceName};
use serde_json::Value;

const COMPONENTS: [(&str, ServiceName); 4] = [
    ("ingest", ServiceName::Ingest),
    ("matcher", ServiceName::Matcher),
    ("executor", ServiceName::Executor),
    ("scheduler", ServiceName::Scheduler),
];

/// Settings the chart sets itself (listen addresses from its ports, secrets from the existing
/// Secret), so its `config` value must not accept them.
const CHART_OWNED: [&str; 8] = [
    "http.listen",
    "ops.listen",
    "amqp.url",
    "database.url",
    "ingest.admin_token",
    "security.encryption_key",
    "security.previous_encryption_keys",
    "executor.smtp.password",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn deploy_tests() -> PathBuf {
    root().join("tests/deploy")
}

/// The Python of the deployment tools' virtual environment.
fn python() -> PathBuf {
    let python = deploy_tests().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: the deployment checks need helm-python-sdk, kubernetes-validate and \
         checkov there (`cargo xtask test` installs them; see xtask/src/tools_kubernetes.rs)",
        python.display()
    );
    python
}

/// Runs `program` in `tests/deploy/` with `input` on stdin; panics with everything it said
/// unless it succeeds. Returns its stdout and stderr.
fn run(program: &Path, args: &[&str], input: &str) -> (String, String) {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(deploy_tests())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{} {} failed ({}):\n{stderr}\n{stdout}",
        program.display(),
        args.join(" "),
        output.status
    );
    (stdout, stderr)
}

fn run_json(program: &Path, args: &[&str]) -> Value {
    let (stdout, stderr) = run(program, args, "");
    eprint!("{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON: {e}"))
}

/// Every setting of Herald's configuration as `section.key`, with its default.
/// Every setting by its dotted name (`section.key`, or `section.table.key` within a table
/// such as `executor.smtp`), with its default.
fn settings() -> BTreeMap<String, Value> {
    fn walk(prefix: &str, value: &Value, into: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(keys) => {
                for (key, value) in keys {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&name, value, into);
                }
            }
            _ => {
                into.insert(prefix.to_owned(), value.clone());
            }
        }
    }
    let defaults = serde_json::to_value(Config::defaults(ServiceName::Ingest)).expect("json");
    let mut settings = BTreeMap::new();
    walk("", &defaults, &mut settings);
    settings
}

/// `HERALD_<SECTION>__<KEY>` of a setting (`HERALD_<SECTION>__<TABLE>__<KEY>` within a table).
fn variable(setting: &str) -> String {
    format!("HERALD_{}", setting.to_uppercase().replace('.', "__"))
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no text at {pointer} in {value}"))
}

/// A directory of its own under the system's temporary one, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("herald-deploy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads a configuration the way the binary does, and names what was given on failure.
fn load(service: ServiceName, file: Option<&Path>, env: &BTreeMap<String, String>) -> Config {
    let vars = env.iter().map(|(k, v)| (k.clone(), v.clone()));
    Config::load_from(service, file, vars)
        .unwrap_or_else(|e| panic!("{}: {e} (environment {env:?})", service.binary()))
}

/// Whether the real binary has `subcommand` (the migration Job and compose's migrate service
/// run `herald-ingest migrate`, the Deployments `serve`).
fn assert_subcommand(binary: &str, subcommand: &str) {
    let path = herald_tests::env::bin_dir().join(binary);
    let output = Command::new(&path)
        .args([subcommand, "--help"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        output.status.success(),
        "`{binary} {subcommand}` is not a command of the binary: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The Helm chart

/// The objects' name prefix: check_chart.py renders release "herald" of chart "herald", and
/// the ci values files keep the default names.
const FULLNAME: &str = "herald";

/// The name of a component's Deployment, Service, autoscaler, budget and policy.
fn component_name(component: &str) -> String {
    format!("{FULLNAME}-{component}")
}

/// The rendered objects of one values file, with the values a release would use.
struct Case {
    name: String,
    values: Value,
    objects: Vec<Value>,
}

impl Case {
    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.name))
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }
}

/// Lints and renders every `helm/herald/ci/*-values.yaml`, refuses the files of
/// `tests/deploy/rejected-values/`, and validates every built-in object (check_chart.py).
fn rendered_cases() -> Vec<Case> {
    let output = run_json(&python(), &["check_chart.py"]);
    output["cases"]
        .as_object()
        .expect("cases")
        .iter()
        .map(|(name, case)| Case {
            name: name.clone(),
            values: case["values"].clone(),
            objects: case["objects"].as_array().expect("objects").clone(),
        })
        .collect()
}

#[test]
fn the_chart_lints_renders_and_passes_the_kubernetes_and_crd_schemas() {
    let cases = rendered_cases();
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    for expected in ["default", "full", "minimal"] {
        assert!(names.contains(expected), "no ci/{expected}-values.yaml");
    }
    // The custom resources, against their CRDs' schemas and types (@kubernetes-models, on Node).
    let custom: Vec<&Value> = cases
        .iter()
        .flat_map(|c| c.objects.iter())
        .filter(|o| {
            let api = o["apiVersion"].as_str().unwrap_or_default();
            api.starts_with("monitoring.coreos.com/") || api.starts_with("keda.sh/")
        })
        .collect();
    let kinds: BTreeSet<&str> = custom.iter().map(|o| text(o, "/kind")).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "PodMonitor",
            "PrometheusRule",
            "ScaledObject",
            "ServiceMonitor",
            "TriggerAuthentication"
        ]),
        "the ci values files together should render every custom resource the chart has"
    );
    let input = serde_json::to_string(&custom).expect("json");
    let (report, _) = run(Path::new("node"), &["validate_crds.js"], &input);
    eprint!("{report}");
}

#[test]
fn the_chart_renders_configuration_herald_accepts_and_wires_it_up() {
    let scratch = Scratch::new();
    assert_subcommand("herald-ingest", "migrate");
    for (_, service) in COMPONENTS {
        assert_subcommand(service.binary(), "serve");
    }
    for case in rendered_cases() {
        let config_map = case.get("ConfigMap", &format!("{FULLNAME}-config"));
        for (component, service) in COMPONENTS {
            let deployment = case.get("Deployment", &component_name(component));
            let pod = &deployment["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            let what = format!("{}: {component}", case.name);
            assert_eq!(
                container["command"],
                serde_json::json!([format!("/usr/local/bin/{}", service.binary())]),
                "{what}"
            );
            assert_eq!(container["args"], serde_json::json!(["serve"]), "{what}");

            // The file the container reads, from the ConfigMap key its volume maps there.
            let env = container_env(container, &what);
            let config_path = env.get("HERALD_CONFIG").expect("HERALD_CONFIG");
            let (dir, file) = config_path.rsplit_once('/').expect("a path");
            let mount = container["volumeMounts"]
                .as_array()
                .expect("mounts")
                .iter()
                .find(|m| m["mountPath"] == dir)
                .unwrap_or_else(|| panic!("{what}: nothing mounted at {dir}"));
            let volume = pod["volumes"]
                .as_array()
                .expect("volumes")
                .iter()
                .find(|v| v["name"] == mount["name"])
                .expect("the mounted volume");
            assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
            let item = volume["configMap"]["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|i| i["path"] == file)
                .unwrap_or_else(|| panic!("{what}: no item at {file}"));
            let toml = text(config_map, &format!("/data/{}", text(item, "/key")));
            let path = scratch.0.join(format!("{}-{component}.toml", case.name));
            std::fs::write(&path, toml).expect("write");
            let config = load(service, Some(&path), &env);

            // Ports, probes and Service agree with what the service will listen on.
            let ports: BTreeMap<&str, u64> = container["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .map(|p| (text(p, "/name"), p["containerPort"].as_u64().expect("port")))
                .collect();
            assert!(
                config.ops.listen.ip().is_unspecified(),
                "{what}: ops.listen"
            );
            assert_eq!(
                ports.get("metrics").copied(),
                Some(u64::from(config.ops.listen.port())),
                "{what}"
            );
            if service == ServiceName::Ingest {
                assert!(config.http.listen.ip().is_unspecified(), "{what}");
                assert_eq!(
                    ports.get("http").copied(),
                    Some(u64::from(config.http.listen.port())),
                    "{what}"
                );
            }
            for (probe, path) in [
                ("startupProbe", "/healthz"),
                ("livenessProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
            ] {
                assert_eq!(container[probe]["httpGet"]["path"], path, "{what}: {probe}");
                assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{what}");
            }
            let svc = case.get("Service", &component_name(component));
            let svc_ports: BTreeSet<&str> = svc["spec"]["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .map(|p| text(p, "/targetPort"))
                .collect();
            let expected: BTreeSet<&str> = if service == ServiceName::Ingest {
                BTreeSet::from(["http", "metrics"])
            } else {
                BTreeSet::from(["metrics"])
            };
            assert_eq!(svc_ports, expected, "{what}: Service ports");
            assert_restricted(pod, &what);
            assert_scaling(&case, component, deployment);
        }
        if case.name == "full" {
            assert_full_settings_arrive(&case, &scratch);
        }
        assert_migration(&case);
        monitoring::assert_monitoring(&case);
    }
}

/// A container's environment, with placeholder values for what comes from the Secret.
fn container_env(container: &Value, what: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for var in container["env"].as_array().expect("env") {
        let name = text(var, "/name").to_owned();
        let value = if let Some(value) = var["value"].as_str() {
            value.to_owned()
        } else {
            assert!(
                var["valueFrom"]["secretKeyRef"].is_object(),
                "{what}: {name} comes from neither a value nor the Secret"
            );
            match name.as_str() {
                "HERALD_DATABASE__URL" => "postgres://herald:secret@db:5432/herald".into(),
                "HERALD_AMQP__URL" => "amqp://herald:secret@mq:5672/%2f".into(),
                "HERALD_INGEST__ADMIN_TOKEN" => "an-admin-token-of-32-characters!".into(),
                "HERALD_SECURITY__ENCRYPTION_KEY" => herald_tests::sandbox::ENCRYPTION_KEY.into(),
                "HERALD_SECURITY__PREVIOUS_ENCRYPTION_KEYS" => {
                    herald_common::crypto::generate_key()
                }
                "HERALD_EXECUTOR__SMTP__PASSWORD" => "an smtp password".into(),
                other => panic!("{what}: unexpected secret variable {other}"),
            }
        };
        env.insert(name, value);
    }
    for secret in [
        "HERALD_DATABASE__URL",
        "HERALD_AMQP__URL",
        "HERALD_SECURITY__ENCRYPTION_KEY",
    ] {
        assert!(env.contains_key(secret), "{what}: no {secret}");
    }
    env
}

/// The restricted pod-security profile, with a read-only root and a writable /tmp.
fn assert_restricted(pod: &Value, what: &str) {
    assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{what}"
    );
    for container in pod["containers"].as_array().expect("containers") {
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{what}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{what}");
        assert_eq!(security["runAsNonRoot"], true, "{what}");
        assert_eq!(
            security["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{what}"
        );
        let tmp = container["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["mountPath"] == "/tmp")
            .unwrap_or_else(|| panic!("{what}: no /tmp"));
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == tmp["name"])
            .expect("/tmp's volume");
        assert!(
            volume["emptyDir"].is_object(),
            "{what}: /tmp is an emptyDir"
        );
    }
}

/// Replicas, HPA or KEDA as the values ask, on the queues the code really consumes.
fn assert_scaling(case: &Case, component: &str, deployment: &Value) {
    let values = &case.values[component];
    let name = component_name(component);
    let what = format!("{}: {component}", case.name);
    let kind = text(values, "/autoscaling/type");
    let hpa = case.find("HorizontalPodAutoscaler", &name);
    let scaled = case.find("ScaledObject", &name);
    match kind {
        "none" => {
            assert_eq!(deployment["spec"]["replicas"], values["replicas"], "{what}");
            assert!(hpa.is_none() && scaled.is_none(), "{what}");
        }
        "hpa" => {
            let hpa = hpa.unwrap_or_else(|| panic!("{what}: no HPA"));
            assert!(deployment["spec"].get("replicas").is_none(), "{what}");
            assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], name.as_str());
            assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
            assert!(scaled.is_none(), "{what}");
        }
        "keda" => {
            let scaled = scaled.unwrap_or_else(|| panic!("{what}: no ScaledObject"));
            assert!(deployment["spec"].get("replicas").is_none(), "{what}");
            assert!(hpa.is_none(), "{what}: KEDA makes its own HPA");
            assert_eq!(scaled["spec"]["scaleTargetRef"]["name"], name.as_str());
            let expected: BTreeSet<&str> = match component {
                "matcher" => BTreeSet::from([topology::MATCHER_QUEUE]),
                "executor" => BTreeSet::from([
                    topology::EXECUTOR_FIRST_QUEUE,
                    topology::EXECUTOR_RETRY_QUEUE,
                ]),
                "scheduler" => BTreeSet::from([topology::SCHEDULER_QUEUE]),
                other => panic!("{what}: {other} cannot scale on a queue"),
            };
            let triggers = scaled["spec"]["triggers"].as_array().expect("triggers");
            let queues: BTreeSet<&str> = triggers
                .iter()
                .map(|t| text(t, "/metadata/queueName"))
                .collect();
            assert_eq!(queues, expected, "{what}: the queues KEDA watches");
            for trigger in triggers {
                assert_eq!(trigger["type"], "rabbitmq");
                let auth = case.get(
                    "TriggerAuthentication",
                    text(trigger, "/authenticationRef/name"),
                );
                let secret = &auth["spec"]["secretTargetRef"][0];
                assert_eq!(secret["parameter"], "host");
                assert_eq!(secret["name"], case.values["existingSecret"]);
                assert_eq!(secret["key"], case.values["secretKeys"]["amqpUrl"]);
            }
        }
        other => panic!("{what}: autoscaling.type {other}"),
    }
    let pdb = case.find("PodDisruptionBudget", &name);
    assert_eq!(
        pdb.is_some(),
        values["podDisruptionBudget"]["enabled"] == true,
        "{what}: PodDisruptionBudget"
    );
    if let Some(pdb) = pdb {
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"],
            "{what}"
        );
    }
    let policy = case.find("NetworkPolicy", &name);
    assert_eq!(
        policy.is_some(),
        case.values["networkPolicy"]["enabled"] == true,
        "{what}: NetworkPolicy"
    );
}

/// Settings of ci/full-values.yaml reach the right service, shared ones and per-service ones.
fn assert_full_settings_arrive(case: &Case, scratch: &Scratch) {
    let config_map = case.get("ConfigMap", &format!("{FULLNAME}-config"));
    let loaded = |component: &str, service: ServiceName| {
        let path = scratch.0.join(format!("full-check-{component}.toml"));
        let toml = text(config_map, &format!("/data/{component}.toml"));
        std::fs::write(&path, toml).expect("write");
        load(service, Some(&path), &BTreeMap::new())
    };
    let ingest = loaded("ingest", ServiceName::Ingest);
    let matcher = loaded("matcher", ServiceName::Matcher);
    let executor = loaded("executor", ServiceName::Executor);
    assert_eq!(ingest.database.max_connections, 40, "ingest.config wins");
    assert_eq!(matcher.database.max_connections, 20, "the shared config");
    assert_eq!(ingest.ingest.max_body_bytes, 2_097_152);
    assert_eq!(matcher.matcher.batch_max_messages, 512);
    assert_eq!(executor.executor.concurrency, 1024);
    assert_eq!(executor.executor.circuit_failure_ratio, 0.6);
    assert_eq!(
        executor.executor.allow_private_destinations,
        ["10.20.0.0/16", "hooks.internal.example.com"]
    );
    assert_eq!(ingest.http.listen.port(), 8081);
    assert_eq!(ingest.ops.listen.port(), 9100);
}

/// The migration Job: a pre-install/pre-upgrade hook running `herald-ingest migrate` with
/// nothing but the existing Secret (the chart's other objects do not exist yet then).
fn assert_migration(case: &Case) {
    let name = format!("{FULLNAME}-migrate");
    let job = case.find("Job", &name);
    assert_eq!(
        job.is_some(),
        case.values["migrations"]["enabled"] == true,
        "{}: migration Job",
        case.name
    );
    let Some(job) = job else { return };
    let what = format!("{}: {name}", case.name);
    let hooks: BTreeSet<&str> = text(job, "/metadata/annotations/helm.sh~1hook")
        .split(',')
        .collect();
    assert_eq!(
        hooks,
        BTreeSet::from(["pre-install", "pre-upgrade"]),
        "{what}"
    );
    let pod = &job["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["command"],
        serde_json::json!(["/usr/local/bin/herald-ingest"]),
        "{what}"
    );
    assert_eq!(container["args"], serde_json::json!(["migrate"]), "{what}");
    assert!(
        pod.get("serviceAccountName").is_none(),
        "{what}: the chart's ServiceAccount does not exist before install"
    );
    for volume in pod["volumes"].as_array().expect("volumes") {
        assert!(
            volume.get("configMap").is_none(),
            "{what}: the chart's ConfigMap does not exist before install"
        );
    }
    assert_restricted(pod, &what);
    let env = container_env(container, &what);
    load(ServiceName::Ingest, None, &env);
}

fn json_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".json"))
        .collect()
}

#[test]
fn the_chart_schema_takes_every_herald_setting_the_chart_does_not_set_itself() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("helm/herald/values.schema.json")).expect("schema"),
    )
    .expect("JSON");
    fn walk(prefix: &str, spec: &Value, into: &mut BTreeMap<String, Value>) {
        match spec.get("properties").and_then(Value::as_object) {
            Some(keys) => {
                for (key, spec) in keys {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&name, spec, into);
                }
            }
            None => {
                into.insert(prefix.to_owned(), spec.clone());
            }
        }
    }
    let mut in_schema = BTreeMap::new();
    walk("", &schema["definitions"]["config"], &mut in_schema);
    let in_code: BTreeMap<String, Value> = settings()
        .into_iter()
        .filter(|(setting, _)| !CHART_OWNED.contains(&setting.as_str()))
        .collect();
    let missing: Vec<&String> = in_code
        .keys()
        .filter(|k| !in_schema.contains_key(*k))
        .collect();
    let unknown: Vec<&String> = in_schema
        .keys()
        .filter(|k| !in_code.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "helm/herald/values.schema.json definitions.config is out of step with common/src/config.rs: \
         missing {missing:?}, not settings {unknown:?}"
    );
    for (setting, default) in &in_code {
        let spec = &in_schema[setting];
        let kind = spec["type"].as_str().unwrap_or_default();
        let fits = match default {
            Value::Bool(_) => kind == "boolean",
            Value::String(s) => {
                kind == "string"
                    && spec["enum"]
                        .as_array()
                        .is_none_or(|e| e.contains(&Value::from(s.as_str())))
            }
            Value::Array(_) => kind == "array",
            Value::Number(n) if n.is_f64() => kind == "number",
            Value::Number(_) => kind == "integer",
            _ => false,
        };
        assert!(
            fits,
            "{setting}: the schema says {spec}, the default is {default}"
        );
    }
}

#[test]
fn checkov_finds_nothing_unexplained_in_the_chart_or_the_dockerfile() {
    let (_, report) = run(&python(), &["scan_manifests.py"], "");
    eprint!("{report}");
}

#[test]
fn the_chart_carries_the_current_dashboards_and_alert_rules() {
    let root = root();
    let copy = "cp deploy/grafana/*.json helm/herald/files/dashboards/ && \
                cp deploy/prometheus/alerts.yml helm/herald/files/alerts.yml";
    let canonical = json_files(&root.join("deploy/grafana"));
    let copied = json_files(&root.join("helm/herald/files/dashboards"));
    assert!(!canonical.is_empty(), "no dashboards under deploy/grafana");
    assert_eq!(
        canonical, copied,
        "the chart's dashboards are not those of deploy/grafana (remove the stale copies, then \
         run `{copy}`)"
    );
    let mut pairs: Vec<(PathBuf, PathBuf)> = canonical
        .iter()
        .map(|f| {
            (
                root.join("deploy/grafana").join(f),
                root.join("helm/herald/files/dashboards").join(f),
            )
        })
        .collect();
    pairs.push((
        root.join("deploy/prometheus/alerts.yml"),
        root.join("helm/herald/files/alerts.yml"),
    ));
    for (source, copy_path) in pairs {
        let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(
            read(&source) == read(&copy_path),
            "{} differs from {}: Helm reads only files inside the chart, so it keeps copies; \
             run `{copy}`",
            copy_path.display(),
            source.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The compose stack and the image

#[test]
fn the_compose_stack_sets_only_real_settings_and_mounts_what_exists() {
    let output = run_json(&python(), &["check_compose.py"]);
    let known: BTreeSet<String> = settings().keys().map(|s| variable(s)).collect();
    let services = output["services"].as_object().expect("services");
    for (name, service) in services {
        let env: BTreeMap<String, String> = service["env"]
            .as_object()
            .expect("env")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("text").to_owned()))
            .collect();
        for variable in env.keys().filter(|k| k.starts_with("HERALD_")) {
            assert!(
                known.contains(variable),
                "deploy/compose.yaml: {name} sets {variable}, which is not a setting of \
                 common/src/config.rs"
            );
        }
        let service_name = COMPONENTS
            .iter()
            .find(|(c, _)| c == name)
            .map_or(ServiceName::Ingest, |(_, s)| *s);
        let config = load(service_name, None, &env);
        if name != "migrate" {
            assert!(
                config.ops.listen.ip().is_unspecified(),
                "{name}: ops.listen"
            );
        }
        if name == "ingest" {
            assert!(
                config.http.listen.ip().is_unspecified(),
                "{name}: http.listen"
            );
        }
    }
    // The loader itself refuses a misspelt variable, so the loads above prove something.
    let misspelt = BTreeMap::from([("HERALD_EXECUTOR__CONCURENCY".to_owned(), "4".to_owned())]);
    let refused = Config::load_from(ServiceName::Executor, None, misspelt).map(|_| ());
    assert!(refused.is_err(), "a misspelt HERALD_ variable was accepted");
    assert_subcommand("herald-ingest", "migrate");

    // Prometheus' own checker on the compose stack's configuration and the rules it loads.
    let scratch = Scratch::new();
    let config = std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    let alerts = root().join("deploy/prometheus/alerts.yml");
    let config = config.replace("/etc/prometheus/alerts.yml", &alerts.display().to_string());
    let path = scratch.0.join("prometheus.yml");
    std::fs::write(&path, config).expect("write");
    let (report, _) = run(
        Path::new("promtool"),
        &["check", "config", &path.display().to_string()],
        "",
    );
    eprint!("{report}");
}

#[test]
fn the_dockerfile_builds_the_four_binaries_into_a_non_root_image() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].to_uppercase().starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 2, "a builder stage and a runtime stage");
    let last = &lines[*stages.last().expect("a stage")..];
    let builder = lines[..*stages.last().expect("a stage")].join("\n");
    assert!(
        builder.contains("cargo build --release"),
        "builds in release"
    );
    assert!(
        builder.contains("--mount=type=cache"),
        "the cargo registry and target/ are cache mounts"
    );
    for (_, service) in COMPONENTS {
        let binary = service.binary();
        assert!(builder.contains(binary), "the builder builds {binary}");
        assert!(
            last.iter().any(|l| l.starts_with("COPY")
                && l.contains(binary)
                && l.ends_with("/usr/local/bin/")),
            "the runtime stage copies {binary} to /usr/local/bin"
        );
    }
    let user = last
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER {user}: a numeric, non-root user (Kubernetes' runAsNonRoot can only check numbers)"
    );
    let exposed: BTreeSet<u16> = last
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|p| p.parse().ok())
        .collect();
    let mut expected = BTreeSet::from([8080]);
    for (_, service) in COMPONENTS {
        expected.insert(Config::defaults(service).ops.listen.port());
    }
    assert_eq!(exposed, expected, "EXPOSE the API port and every ops port");
}
