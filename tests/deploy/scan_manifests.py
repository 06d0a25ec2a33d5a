"""Scans the chart's rendered manifests (default and full values) and the Dockerfile with
checkov, offline (--skip-download).

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

from chart_cases import ROOT, cases, render

# The renders scanned: the defaults, and everything on. (ci/minimal-values.yaml drops the
# resource settings and budgets on purpose.)
SCANNED = ("default", "full")

# (check, render or None for every one, why it does not apply). Keep this short.
SKIPPED = [
    ("CKV_K8S_35", None,
     "Herald reads its secrets only from HERALD_* environment variables (no *_FILE form), "
     "so the chart maps the existing Secret's keys to them with secretKeyRef"),
    ("CKV_K8S_43", "default",
     "the default image is a release tag; image.digest pins a digest (the full render does, "
     "and passes)"),
    ("CKV_K8S_15", "default",
     "IfNotPresent suits immutable release tags; image.pullPolicy: Always is a value away (the "
     "full render sets it, and passes)"),
    ("CKV2_K8S_6", "default",
     "NetworkPolicies are opt-in (networkPolicy.enabled), as they depend on the cluster's CNI "
     "and on how traffic reaches the API; the full render covers every pod"),
    ("CKV_DOCKER_2", "Dockerfile",
     "the distroless image has no shell or HTTP client for a HEALTHCHECK; Kubernetes probes "
     "/healthz and /readyz, and compose orders start-up with depends_on"),
]


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
    with tempfile.TemporaryDirectory(prefix="herald-checkov-") as tmp:
        reports = checkov_reports(Path(tmp), dict(cases()))
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
            skip = next((s for s in SKIPPED if s[0] == check and s[1] in (None, place)), None)
            if severity in ("HIGH", "CRITICAL"):
                problems.append(finding)
            elif skip is None:
                problems.append(f"{finding} (fix it, or add it to SKIPPED in {Path(__file__).name} with the reason)")
            else:
                used.add(skip)
                skipped.append((check, place))
    for skip in SKIPPED:
        if skip not in used:
            problems.append(f"SKIPPED entry {skip[0]} for {skip[1] or 'every render'} matches nothing now: remove it")
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
