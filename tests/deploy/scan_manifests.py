"""Scans the chart's rendered manifests (every helm/herald/ci/*-values.yaml) and the
Dockerfile with checkov, offline (--skip-download).

Offline, checkov reports no severities, so every failed check fails this script unless it
is listed in SKIPPED below with the reason; a HIGH or CRITICAL finding fails it even then,
and so does a SKIPPED entry that no longer matches anything (the list only shrinks).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from chart_cases import ROOT, cases, merged, render

# The renders scanned: every CI values case, so a setting only one of them turns on is
# scanned too.
SCANNED = tuple(name for name, _ in cases())


def resources_unset(values, resource):
    """Whether the values remove the resource settings of the finding's Deployment or Job
    (`resources: null`; the defaults set requests and limits)."""
    name = resource.rsplit(".", 1)[-1]
    component = name.rsplit("-", 1)[-1]
    section = values["migrations"] if component == "migrate" else values.get(component, {})
    return not section.get("resources")


# (check, where it does not apply, why). Where: None for everywhere, "Dockerfile", or a test
# of a render's merged values and the finding's resource, so that a skip follows the
# setting that explains it rather than the name of a values file. Keep this short.
SKIPPED = [
    ("CKV_K8S_35", None,
     "Herald reads its secrets only from HERALD_* environment variables (no *_FILE form), "
     "so the chart maps the existing Secret's keys to them with secretKeyRef"),
    ("CKV_K8S_43", lambda values, _: not values["image"]["digest"],
     "the default image is a release tag; image.digest pins a digest (the full render does, "
     "and passes)"),
    ("CKV_K8S_15", lambda values, _: values["image"]["pullPolicy"] != "Always",
     "IfNotPresent suits immutable release tags; image.pullPolicy: Always is a value away (the "
     "full render sets it, and passes)"),
    ("CKV2_K8S_6", lambda values, _: not values["networkPolicy"]["enabled"],
     "NetworkPolicies are opt-in (networkPolicy.enabled), as they depend on the cluster's CNI "
     "and on how traffic reaches the API; the full render covers every pod"),
] + [
    (check, resources_unset,
     "`resources: null` removes the default requests and limits, which a user may do (the "
     "minimal render shows the chart still works); every render that keeps them passes")
    for check in ("CKV_K8S_10", "CKV_K8S_11", "CKV_K8S_12", "CKV_K8S_13")
] + [
    ("CKV_DOCKER_2", "Dockerfile",
     "the distroless image has no shell or HTTP client for a HEALTHCHECK; Kubernetes probes "
     "/healthz and /readyz, and compose orders start-up with depends_on"),
]


def applies(skip, place, resource, values):
    where = skip[1]
    if where is None or isinstance(where, str):
        return where in (None, place)
    return place in values and where(values[place], resource)


def checkov_reports(tmp, wanted):
    """Runs checkov once per render (its graph checks would otherwise pair one render's
    NetworkPolicies with another's pods) and once on the Dockerfile, in parallel."""
    checkov = Path(sys.executable).parent / "checkov"
    env = dict(os.environ, CKV_SKIP_PACKAGE_UPDATE_CHECK="true")
    runs = []
    for name in SCANNED:
        (tmp / name).mkdir()
        objects = [obj for _, obj in render(wanted[name])]
        (tmp / name / "manifests.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
        runs.append(("kubernetes", tmp / name))
    (tmp / "image").mkdir()
    shutil.copy(ROOT / "Dockerfile", tmp / "image" / "Dockerfile")
    runs.append(("dockerfile", tmp / "image"))
    started = [
        (framework, subprocess.Popen(
            [str(checkov), "--framework", framework, "--skip-download", "--quiet", "--compact",
             "--output", "json", "--directory", str(directory)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        ), directory.name)
        for framework, directory in runs
    ]
    reports = []
    for framework, process, place in started:
        out, err = process.communicate()
        # checkov exits 1 when a check failed; no JSON at all means it crashed.
        try:
            report = json.loads(out)
        except json.JSONDecodeError:
            raise SystemExit(f"checkov ({framework}, {place}) did not report (exit {process.returncode}):\n{out}\n{err}")
        for one in report if isinstance(report, list) else [report]:
            one["place"] = "Dockerfile" if framework == "dockerfile" else place
            reports.append(one)
    return reports


def main():
    wanted = dict(cases())
    with tempfile.TemporaryDirectory(prefix="herald-checkov-") as tmp:
        reports = checkov_reports(Path(tmp), wanted)
    values = {name: merged(given) for name, given in wanted.items()}
    problems = []
    scanned = sorted((r.get("check_type"), r["place"]) for r in reports)
    expected = sorted([("kubernetes", name) for name in SCANNED] + [("dockerfile", "Dockerfile")])
    if scanned != expected:
        problems.append(f"checkov scanned {scanned}, expected {expected}")
    used = set()
    skipped = []
    passed = 0
    for report in reports:
        passed += report["summary"]["passed"]
        if report["summary"].get("parsing_errors"):
            problems.append(f"{report['check_type']}: {report['summary']['parsing_errors']} files checkov could not parse")
        for result in report["results"]["failed_checks"]:
            check, place = result["check_id"], report["place"]
            severity = (result.get("severity") or "").upper()
            finding = f"{check} ({severity or 'no severity offline'}) {place}: {result['resource']}: {result['check_name']}"
            skip = next((s for s in SKIPPED if s[0] == check and applies(s, place, result["resource"], values)), None)
            if severity in ("HIGH", "CRITICAL"):
                problems.append(finding)
            elif skip is None:
                problems.append(f"{finding} (fix it, or add it to SKIPPED in {Path(__file__).name} with the reason)")
            else:
                used.add(skip)
                skipped.append((check, place))
    for skip in SKIPPED:
        if skip not in used:
            where = skip[1] if isinstance(skip[1], str) else ("every render" if skip[1] is None else "the renders it names")
            problems.append(f"SKIPPED entry {skip[0]} for {where} matches nothing now: remove it")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    counts = {}
    for check, place in skipped:
        counts[(check, place)] = counts.get((check, place), 0) + 1
    print(f"checkov: {passed} checks passed; failed but skipped with a reason: "
          + ", ".join(f"{check} on {place} x{n}" for (check, place), n in sorted(counts.items())),
          file=sys.stderr)


if __name__ == "__main__":
    main()
