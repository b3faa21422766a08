"""The production compose file cannot run here (no Docker engine), so check it statically: it parses,
every Vigil service runs a real `vigil` command, every VIGIL_* variable is a real setting, and no
secret has a default."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from vigil.cli import SERVICES
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
    used = set(re.findall(r"\b(VIGIL_[A-Z_]+)\b", COMPOSE.read_text()))
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
    documented = set(re.findall(r"\b(VIGIL_[A-Z_]+)\b", (ROOT / "README.md").read_text()))
    assert documented <= fields, f"README names unknown settings: {documented - fields}"
    assert fields <= documented, f"settings missing from the README: {fields - documented}"
