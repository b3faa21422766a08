"""Kafka TLS and SASL settings become aiokafka's arguments for every client vigil/kafka.py makes.
(The embedded broker, Tansu, speaks neither, so a real cluster is not in the suite: these check the
arguments each client is built with, and that a half-configured cluster is refused.)"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.shell.tls_files import OPENSSL, make_tls_files
from vigil import kafka
from vigil.errors import ConfigurationError
from vigil.settings import Settings, get_settings


@pytest.fixture
def clean_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_plaintext_adds_nothing() -> None:
    assert kafka.client_security(Settings()) == {}


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_sasl_ssl_gives_a_verifying_context_and_the_credentials(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    s = Settings(
        kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=str(tls.ca),
        kafka_sasl_username="vigil", kafka_sasl_password=SecretStr("p" * 24),
    )  # fmt: skip
    options = kafka.client_security(s)
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "vigil",
        "sasl_plain_password": "p" * 24,
    }
    # Mutual TLS: this client's certificate and key are loaded into the context.
    mutual = s.model_copy(update={"kafka_ssl_certfile": str(tls.cert), "kafka_ssl_keyfile": str(tls.key)})
    assert isinstance(kafka.client_security(mutual)["ssl_context"], ssl.SSLContext)


def test_half_configured_security_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="VIGIL_KAFKA_SASL_PASSWORD"):
        kafka.client_security(Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u"))
    with pytest.raises(ConfigurationError, match="or neither"):
        kafka.client_security(Settings(kafka_security_protocol="SSL", kafka_ssl_certfile="/c.pem"))


async def test_every_client_takes_the_environments_security(
    monkeypatch: pytest.MonkeyPatch, clean_settings_cache: None
) -> None:
    monkeypatch.setenv("VIGIL_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("VIGIL_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("VIGIL_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("VIGIL_KAFKA_SASL_PASSWORD", "s" * 24)
    # The arguments each aiokafka class is built with, not a connection (there is no such cluster).
    monkeypatch.setattr(kafka, "AIOKafkaProducer", lambda **kw: kw)
    monkeypatch.setattr(kafka, "AIOKafkaConsumer", lambda *topics, **kw: kw)
    for options in (kafka.make_producer("127.0.0.1:1"), kafka.make_consumer("127.0.0.1:1", "g", "t")):
        assert options["security_protocol"] == "SASL_PLAINTEXT" and options["sasl_mechanism"] == "PLAIN"
        assert options["sasl_plain_username"] == "svc" and options["sasl_plain_password"] == "s" * 24
