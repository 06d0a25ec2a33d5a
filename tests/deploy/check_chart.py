"""Checks the Helm chart offline with tools that share no code with it:

- values.schema.json closes every object (additionalProperties: false), except values that
  are maps by nature or Kubernetes objects passed through unchanged;
- `helm lint --strict` (Kubernetes 1.30) passes for every helm/herald/ci/*-values.yaml, and
  every values file under tests/deploy/rejected-values/ is refused by both lint and render with
  the error it names (by render alone where it relies on a null removing a default, which
  `helm lint` does not apply);
- every rendered object of a built-in kind is valid under kubernetes-validate's strict schemas
  for Kubernetes 1.30 (unknown fields are errors).

- the PrometheusRule carries the rules of files/alerts.yml unchanged.

Prints {"cases": {name: {"values": merged values, "objects": [objects]}}} as JSON on stdout
for the Rust test, which validates the custom resources with the @kubernetes-models packages,
the rendered configuration with Herald's own loader, and what each values file should turn
on. Exits 1 with the reasons on stderr when a check fails.
"""

import json
import sys

import helm_python
import kubernetes_validate
import yaml

from chart_cases import CHART, KUBE_VERSION, NAMESPACE, REJECTED, cases, merged, render

# API groups of custom resources: validated by validate_crds.js, not kubernetes-validate.
CUSTOM_GROUPS = ("monitoring.coreos.com/", "keda.sh/")

problems = []


def schema_holes(node, path="$"):
    """Paths of object schemas that accept unknown keys without saying why."""
    holes = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            extra = node.get("additionalProperties", True)
            passthrough = "Passed through unchanged" in node.get("description", "")
            is_map = isinstance(extra, dict) and "properties" not in node
            if extra is not False and not passthrough and not is_map:
                holes.append(path)
        for key, value in node.items():
            holes.extend(schema_holes(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            holes.extend(schema_holes(value, f"{path}[{i}]"))
    return holes


def lint_errors(values):
    report = helm_python.lint(
        str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}"
    )
    # Severity: 1 info, 2 warning, 3 error; strict mode fails on warnings too.
    found = [f"{m['path']}: {m['error'].strip()}" for m in report["messages"] if m["severity"] >= 2]
    found += [e.strip() for e in report["errors"] if not any(e.strip() in f for f in found)]
    return found


def check_schema():
    schema = json.loads((CHART / "values.schema.json").read_text())
    for hole in schema_holes(schema):
        problems.append(f"values.schema.json: {hole} accepts unknown keys (add additionalProperties: false)")


def check_case(name, values):
    errors = lint_errors(values)
    for error in errors:
        problems.append(f"ci/{name}-values.yaml: helm lint --strict: {error}")
    try:
        objects = render(values)
    except helm_python.HelmError as error:
        problems.append(f"ci/{name}-values.yaml: render failed: {error}")
        return {"values": {}, "objects": []}
    core = 0
    for template, obj in objects:
        what = f"ci/{name}-values.yaml: {template}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("kind") == "PrometheusRule":
            rules = yaml.safe_load((CHART / "files" / "alerts.yml").read_text())
            if obj.get("spec") != rules:
                problems.append(f"{what}: spec is not the rules of files/alerts.yml")
        if obj.get("apiVersion", "").startswith(CUSTOM_GROUPS):
            continue
        core += 1
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            location = "/".join(str(p) for p in error.path)
            problems.append(f"{what}: invalid at {location or '(top)'}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{what}: {error.message}")
    print(f"{name}: lint clean, {len(objects)} objects, {core} built-in ones valid", file=sys.stderr)
    return {"values": merged(values), "objects": [obj for _, obj in objects]}


def check_rejected():
    files = sorted(REJECTED.glob("*.yaml"))
    if not files:
        problems.append(f"no values files under {REJECTED}")
    for path in files:
        text = path.read_text()
        expected = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("# expect:")]
        if len(expected) != 1:
            problems.append(f"{path.name}: needs one `# expect: <error text>` line")
            continue
        values = yaml.safe_load(text) or {}
        lint = " | ".join(lint_errors(values))
        # `helm lint` keeps a default that a null in the values removes (install does not):
        # such a file says `# lint keeps defaults` and is checked by render alone.
        if "# lint keeps defaults" not in text and expected[0] not in lint:
            problems.append(f"{path.name}: helm lint should refuse it with {expected[0]!r}, said: {lint or 'nothing'}")
        try:
            render(values)
            problems.append(f"{path.name}: rendered, but should be refused with {expected[0]!r}")
        except helm_python.HelmError as error:
            if expected[0] not in str(error):
                problems.append(f"{path.name}: render refused it, but not with {expected[0]!r}: {error}")
    print(f"rejected: {len(files)} values files refused", file=sys.stderr)


def main():
    check_schema()
    rendered = {name: check_case(name, values) for name, values in cases()}
    check_rejected()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    json.dump({"cases": rendered}, sys.stdout)


if __name__ == "__main__":
    main()
