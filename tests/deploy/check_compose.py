"""Checks deploy/compose.yaml and what it mounts, without Docker:

- it parses (PyYAML, merge keys resolved), names the expected services, and every host path
  it mounts or builds from exists in the repository; every named volume is declared;
- the Herald services run the right binary (the migration `herald-ingest migrate`) from the
  one image the migrate service builds;
- the broker and database images are the versions the test suite runs against (the
  RabbitMQ and PostgreSQL installed here, which `cargo xtask test` takes from the OS packages);
- Prometheus loads alerts.yml from where compose mounts it and scrapes each Herald service at
  the port of its HERALD_OPS__LISTEN; Grafana's provisioning points at that Prometheus and at
  the folder compose mounts the dashboards into.

Prints {"services": {name: {"env": {...}}}} (values interpolated as compose would with an
empty environment) on stdout, for the Rust test to load with Herald's own configuration
loader. Exits 1 with the reasons on stderr when a check fails.
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
HERALD = {"ingest": "herald-ingest", "matcher": "herald-matcher", "executor": "herald-executor",
          "scheduler": "herald-scheduler", "migrate": "herald-ingest"}
EXPECTED = set(HERALD) | {"rabbitmq", "postgres", "prometheus", "grafana"}

# Where the tested servers are installed (as xtask/src/packages.rs finds them).
RABBITMQ_LIB = Path("/usr/lib/rabbitmq/lib")
POSTGRES_LIB = Path("/usr/lib/postgresql")

problems = []


def tested_versions():
    """{"rabbitmq": "3.10", "postgres": "15"}: the servers the test suite runs here, as
    image tags of the same series."""
    rabbitmq = [p.name.split("-", 1)[1] for p in RABBITMQ_LIB.glob("rabbitmq_server-*")]
    postgres = [p.name for p in POSTGRES_LIB.glob("*") if (p / "bin" / "postgres").exists()]
    if not rabbitmq or not postgres:
        raise SystemExit(f"no RabbitMQ under {RABBITMQ_LIB} or PostgreSQL under {POSTGRES_LIB}: "
                         "the suite's servers are missing (`cargo xtask test` installs them)")

    def newest(found):
        return max(found, key=lambda v: [int(x) for x in v.split(".") if x.isdigit()])

    return {"rabbitmq": ".".join(newest(rabbitmq).split(".")[:2]), "postgres": newest(postgres)}


def check_image_versions(services):
    """The broker and the database run the series the tests ran against."""
    for name, version in tested_versions().items():
        image = services.get(name, {}).get("image", "")
        tag = image.split(":", 1)[1] if ":" in image else "latest"
        series = tag.split("-", 1)[0]
        if series != version:
            problems.append(f"{name}: image {image!r}, but the test suite runs {name} {version} "
                            f"(pin {name}:{version}...)")


def interpolate(value, where):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default} and $$, with no variable set."""
    if not isinstance(value, str):
        return value

    def one(match):
        if match.group(0) == "$$":
            return "$"
        body = match.group(1)
        for separator in (":-", "-"):
            if separator in body:
                return body.split(separator, 1)[1]
        if ":?" in body or "?" in body:
            problems.append(f"{where}: requires {body.split('?')[0].rstrip(':')} to be set")
            return ""
        return ""

    return re.sub(r"\$\$|\$\{([^}]*)\}", one, value)


def environment(service, name):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(interpolate(value, f"{name}.environment.{key}")) for key, value in env.items()}


def host_mounts(service, name, volumes):
    """Container path -> host path of each bind mount; checks the named ones are declared."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = parts[0], parts[1]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source.startswith((".", "/")):
            path = (DEPLOY / source).resolve()
            if not path.exists():
                problems.append(f"{name}: mounts {source}, which does not exist ({path.relative_to(ROOT) if path.is_relative_to(ROOT) else path})")
            mounts[target] = path
        elif source not in volumes:
            problems.append(f"{name}: volume {source!r} is not declared under volumes:")
    return mounts


def main():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose.get("services") or {}
    volumes = compose.get("volumes") or {}
    if set(services) != EXPECTED:
        problems.append(f"services are {sorted(services)}, expected {sorted(EXPECTED)}")
    mounts = {name: host_mounts(service, name, volumes) for name, service in services.items()}
    check_image_versions(services)

    builds = [(name, s["build"]) for name, s in services.items() if "build" in s]
    image = None
    for name, build in builds:
        context = DEPLOY / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
        if not dockerfile.is_file():
            problems.append(f"{name}: builds from {dockerfile}, which does not exist")
        image = services[name].get("image")
    if len(builds) != 1 or image is None:
        problems.append("one service (migrate) should build the image, with an image: name the others reuse")

    envs = {}
    for name, binary in HERALD.items():
        service = services.get(name, {})
        command = service.get("command") or []
        expected = [binary, "migrate"] if name == "migrate" else [binary]
        if command != expected:
            problems.append(f"{name}: command is {command}, expected {expected}")
        if service.get("image") != image:
            problems.append(f"{name}: image {service.get('image')!r}, expected the built {image!r}")
        envs[name] = {"env": environment(service, name)}

    prometheus = services.get("prometheus", {})
    config_path = mounts.get("prometheus", {}).get("/etc/prometheus/prometheus.yml")
    if config_path is None:
        problems.append("prometheus: deploy/prometheus/prometheus.yml is not mounted at /etc/prometheus/prometheus.yml")
    else:
        config = yaml.safe_load(config_path.read_text())
        for rule_file in config.get("rule_files") or []:
            if rule_file not in mounts["prometheus"]:
                problems.append(f"prometheus.yml: rule file {rule_file} is not mounted by compose")
        if "/etc/prometheus/alerts.yml" not in (config.get("rule_files") or []):
            problems.append("prometheus.yml: does not load /etc/prometheus/alerts.yml")
        targets = {job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
                   for job in config.get("scrape_configs", [])}
        for name in ("ingest", "matcher", "executor", "scheduler"):
            listen = envs[name]["env"].get("HERALD_OPS__LISTEN", "")
            want = [f"{name}:{listen.rsplit(':', 1)[-1]}"]
            if targets.get(f"herald-{name}") != want:
                problems.append(f"prometheus.yml: job herald-{name} scrapes {targets.get(f'herald-{name}')}, expected {want} (HERALD_OPS__LISTEN={listen})")
    if "--config.file=/etc/prometheus/prometheus.yml" not in (prometheus.get("command") or []):
        problems.append("prometheus: not started with --config.file=/etc/prometheus/prometheus.yml")

    grafana = mounts.get("grafana", {})
    provisioning = grafana.get("/etc/grafana/provisioning")
    if provisioning is None:
        problems.append("grafana: deploy/grafana/provisioning is not mounted at /etc/grafana/provisioning")
    else:
        sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
        urls = [s.get("url") for s in sources.get("datasources", [])]
        if urls != ["http://prometheus:9090"]:
            problems.append(f"grafana datasources point at {urls}, expected [http://prometheus:9090]")
        providers = yaml.safe_load((provisioning / "dashboards" / "herald.yml").read_text())
        for provider in providers.get("providers", []):
            path = provider.get("options", {}).get("path")
            if grafana.get(path) != DEPLOY / "grafana":
                problems.append(f"grafana dashboards provider reads {path}, where compose mounts {grafana.get(path)} rather than deploy/grafana")

    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    json.dump({"services": envs}, sys.stdout)


if __name__ == "__main__":
    main()
