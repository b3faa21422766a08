"""The production compose file cannot run here (no Docker engine), so check it statically: it parses,
every Vigil service runs a real `vigil` command, every VIGIL_* variable is a real setting, and no
secret has a default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from shell.services import SERVICES
from vigil.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_vigil_service_has_a_container_running_it():
    services = compose()["services"]
    commands = {tuple(s["command"]) for s in services.values() if s.get("image") == "vigil:latest"}
    assert {("run", name) for name in SERVICES} <= commands
    assert ("migrate",) in commands
    assert {"kafka", "mosquitto", "timescaledb"} <= set(services)


def test_every_vigil_variable_is_a_setting():
    fields = {f"VIGIL_{name.upper()}" for name in Settings.model_fields}
    used = set(re.findall(r"\b(VIGIL_[A-Z0-9_]+)\b", COMPOSE.read_text()))
    assert used, "the compose file configures Vigil through VIGIL_* variables"
    assert used <= fields, f"unknown settings: {used - fields}"


def test_secrets_have_no_defaults():
    text = COMPOSE.read_text()
    for secret in ("VIGIL_API_TOKEN", "POSTGRES_PASSWORD", "MQTT_PASSWORD"):
        for ref in re.findall(r"\$\{" + secret + r"([^}]*)\}", text):
            assert ref.startswith(":?"), f"${{{secret}}} must be required (:?), found {ref!r}"
    assert "allow_anonymous false" in (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()


def test_dockerfile_copies_every_python_package():
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    for package in ("vigil", "ingest", "detectors", "alerts", "api", "simulators"):
        assert f"COPY {package} {package}" in dockerfile


def test_readme_documents_every_setting_and_only_real_ones():
    fields = {f"VIGIL_{name.upper()}" for name in Settings.model_fields}
    documented = set(re.findall(r"\b(VIGIL_[A-Z0-9_]+)\b", (ROOT / "README.md").read_text()))
    assert documented <= fields, f"README names unknown settings: {documented - fields}"
    assert fields <= documented, f"settings missing from the README: {fields - documented}"


# --- the Compose Specification, scaling, metrics ------------------------------------------------

# The Compose Specification's JSON schema, as shipped in the docker-compose 1.29.2 wheel
# (compose/config/compose_spec.json, Apache-2.0), vendored byte for byte.
COMPOSE_SCHEMA = ROOT / "tests/data/compose-spec.json"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
METRICS_PORT = 9400


def vigil_services() -> dict[str, dict]:
    return {n: s for n, s in compose()["services"].items() if s.get("image") == "vigil:latest"}


def test_compose_file_is_valid_against_the_compose_specification():
    import jsonschema_rs

    schema = json.loads(COMPOSE_SCHEMA.read_text())
    doc = compose()
    # The top-level `name` (the project name) entered the specification after this schema was
    # published; everything else is checked as written.
    assert isinstance(doc.pop("name"), str)
    errors = [
        f"{list(e.instance_path)}: {e.message}" for e in jsonschema_rs.validator_for(schema).iter_errors(doc)
    ]
    assert not errors, "\n".join(errors)
    # The schema can only be trusted to catch mistakes if it does catch one.
    broken = compose()
    broken.pop("name")
    broken["services"]["alerts"]["restart_policy"] = "always"
    assert not jsonschema_rs.validator_for(schema).is_valid(broken)


def test_every_command_is_a_real_vigil_command():
    from shell.cli import build_parser

    parser = build_parser()
    for name, service in vigil_services().items():
        args = parser.parse_args(service["command"])  # exits (fails the test) on an unknown command
        if args.command == "run":
            assert args.service in SERVICES, name


def test_scalable_services_have_no_fixed_names_or_host_ports():
    services = vigil_services()
    scalable = {n for n, s in services.items() if s.get("labels", {}).get("vigil.scalable") == "true"}
    # The consumer-group services (and ingest, through the MQTT shared subscription).
    assert {
        "detector-vision",
        "detector-telemetry",
        "telemetry-store",
        "alerts",
        "notifier",
        "ingest",
    } <= scalable
    for name in scalable:
        assert "container_name" not in services[name], name
        assert "ports" not in services[name], (
            f"{name} publishes a host port: a second replica could not start"
        )
    for name, service in compose()["services"].items():
        assert "container_name" not in service, f"{name}: compose names containers itself"


def test_every_long_running_service_has_a_healthcheck():
    for name, service in compose()["services"].items():
        if service.get("restart") == "no":
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), name


def test_every_vigil_service_serves_metrics_that_prometheus_scrapes():
    fields = Settings.model_fields
    assert fields["metrics_port"].default == 0, "metrics are off unless asked for"
    prometheus = yaml.safe_load(PROMETHEUS.read_text())
    targets: dict[str, set[str]] = {}
    for job in prometheus["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A", "one A record per replica: every replica is scraped"
            for host in sd["names"]:
                targets.setdefault(host, set()).add(str(sd["port"]))
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.partition(":")
                targets.setdefault(host, set()).add(port)
    for name, service in vigil_services().items():
        if service.get("restart") == "no":
            continue  # one-shots (migrate, mqtt-acl) are gone before a scrape
        env = service["environment"]
        assert env["VIGIL_METRICS_PORT"] == METRICS_PORT and env["VIGIL_METRICS_HOST"] == "0.0.0.0", name
        assert str(METRICS_PORT) in [str(p) for p in service.get("expose", [])], name
        assert str(METRICS_PORT) in targets.get(name, set()), f"Prometheus does not scrape {name}"
        assert service["command"][0] == "run" and service["command"][1] in SERVICES
    assert set(SERVICES) <= {n for n, s in vigil_services().items() if s.get("restart") != "no"}
    assert "prometheus" in compose()["services"]


def test_mosquitto_reads_the_generated_acl():
    services = compose()["services"]
    acl = services["mqtt-acl"]
    assert acl["command"][:2] == ["mqtt", "acl"]
    out = acl["command"][acl["command"].index("--out") + 1]
    passwd = acl["command"][acl["command"].index("--passwd") + 1]
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert f"acl_file {out}" in conf and f"password_file {passwd}" in conf
    # The same volume at the same path on both sides; Mosquitto starts only once the files exist.
    volume = next(v.split(":")[0] for v in acl["volumes"] if v.split(":")[1] == "/mosquitto/auth")
    assert any(v.startswith(f"{volume}:/mosquitto/auth") for v in services["mosquitto"]["volumes"])
    assert services["mosquitto"]["depends_on"]["mqtt-acl"]["condition"] == "service_completed_successfully"
    from shell.cli import build_parser

    build_parser().parse_args(acl["command"])


def test_dockerfile_copies_every_package_the_wheel_has():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    for package in packages:
        assert f"COPY {package} {package}" in dockerfile, package
