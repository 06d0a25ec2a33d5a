"""The chart under test and its CI values files, rendered with the real Helm library
(PyPI helm-python-sdk, which embeds Helm v4's Go code): shared by check_chart.py and
scan_manifests.py."""

from pathlib import Path

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "herald"
# Values files that must be refused, each with a line `# expect: <text of the error>`.
REJECTED = Path(__file__).resolve().parent / "rejected-values"
KUBE_VERSION = "1.30.0"
RELEASE = "herald"
NAMESPACE = "herald"


def cases():
    """(name, values) for every helm/herald/ci/<name>-values.yaml, sorted by name."""
    found = []
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        values = yaml.safe_load(path.read_text()) or {}
        found.append((path.name[: -len("-values.yaml")], values))
    if not found:
        raise SystemExit(f"no values files under {CHART / 'ci'}")
    return found


def merged(values):
    """The values a release would use: the chart's defaults with `values` over them."""
    with helm_python.Chart.load(str(CHART)) as chart:
        return chart.merge_values(values)


def render(values):
    """The chart's objects for `values` (NOTES.txt and empty documents left out), as
    (template, object) pairs in template order."""
    with helm_python.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
    objects = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects.append((template, document))
    return objects
