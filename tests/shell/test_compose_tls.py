"""The production compose publishes only TLS listeners (static: no Docker engine here). MQTT's
TLS itself runs for real in tests/shell/test_mqtt_client_ids.py on deploy/mosquitto/mosquitto.conf."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Each published host port and the TLS listener behind it.
TLS_PORTS = {"mosquitto": {"8883:8883"}, "tls-proxy": {"8000:8000", "8001:8001"}}


def services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return loaded


def test_only_tls_listeners_are_published() -> None:
    published = {name: set(map(str, s["ports"])) for name, s in services().items() if s.get("ports")}
    assert published == TLS_PORTS, published


def test_mosquitto_listeners_are_tls_with_the_mounted_certificates() -> None:
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    listeners = re.split(r"^listener ", conf, flags=re.M)[1:]
    assert [block.split()[0] for block in listeners] == ["8883", "8884"]
    for block in listeners:
        assert (
            "certfile /mosquitto/certs/server.crt" in block and "keyfile /mosquitto/certs/server.key" in block
        )
    mosquitto = services()["mosquitto"]
    assert any(v.endswith(":/mosquitto/certs:ro") and "TLS_DIR:?" in v for v in mosquitto["volumes"])


def test_the_proxy_terminates_tls_for_the_api_and_camera_push() -> None:
    nginx = (ROOT / "deploy/tls-proxy/nginx.conf").read_text()
    assert "listen 8000 ssl;" in nginx and "proxy_pass http://api:8000;" in nginx
    assert "listen 8001 ssl;" in nginx and "proxy_pass http://camera-ingest:8001;" in nginx
    assert "ssl_certificate     /etc/vigil/tls/server.crt;" in nginx
    proxy = services()["tls-proxy"]
    assert any(v.endswith(":/etc/vigil/tls:ro") and "TLS_DIR:?" in v for v in proxy["volumes"])


def test_services_reach_the_broker_over_tls_on_its_internal_listener() -> None:
    compose = services()
    url = compose["ingest"]["environment"]["VIGIL_MQTT_URL"]
    assert url.startswith("mqtts://") and "@mosquitto:8884?cafile=/etc/vigil/tls/ca.crt" in url
    for name in ("ingest", "notifier"):
        assert "${TLS_DIR:?set TLS_DIR}/ca.crt:/etc/vigil/tls/ca.crt:ro" in compose[name]["volumes"], name
    command = compose["mqtt-acl"]["command"]
    assert command[command.index("--service-passwd") + 1] == "/mosquitto/auth/service-passwd"
