"""The Kafka security settings: what they refuse, what each client library is given,
and that every kafka-python client the project makes goes through one factory (no
broker here; tests/test_kafka_security.py runs them against a secured one)."""
from __future__ import annotations

import re
import ssl

import faust
import pytest
from pydantic import ValidationError

from streams import kafka_clients
from streams.kafka_security import KafkaSecurity
from streams.settings import REPO_ROOT, Settings

PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    from tests.tls_helpers import make_certificates

    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def ca_file(certificates):
    return certificates.ca


@pytest.fixture
def sasl_ssl(monkeypatch, ca_file):
    for name, value in {"KAFKA_BOOTSTRAP": "kafka.example.com:9093", "HIRESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                        "HIRESTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "HIRESTREAM_KAFKA_USERNAME": "alice",
                        "HIRESTREAM_KAFKA_PASSWORD": PASSWORD, "HIRESTREAM_KAFKA_CA_FILE": str(ca_file)}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_plaintext_is_the_default_and_adds_nothing(monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    security = KafkaSecurity.from_settings(Settings())
    assert security.kafka_python() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None
    assert security.librdkafka() == {"security.protocol": "plaintext"}


def test_sasl_ssl_settings_reach_every_client_library(sasl_ssl, ca_file):
    security = KafkaSecurity.from_settings(Settings())
    assert security.kafka_python() == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "alice",
        "sasl_plain_password": PASSWORD, "ssl_cafile": str(ca_file), "ssl_check_hostname": True,
        "ssl_certfile": None, "ssl_keyfile": None}
    assert security.librdkafka() == {
        "security.protocol": "sasl_ssl", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "alice",
        "sasl.password": PASSWORD, "ssl.ca.location": str(ca_file)}
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    # What faust hands every aiokafka client it makes:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    auth = credentials_to_aiokafka_auth(credentials)
    assert {k: auth[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")} \
        == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "alice",
            "sasl_plain_password": PASSWORD}
    context = auth["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "hirestream test CA"),),)]


def test_tls_with_a_client_certificate_reaches_every_client_library(sasl_ssl, certificates):
    """Mutual TLS: the client presents a certificate (here the test CA's broker one)."""
    for name in ("HIRESTREAM_KAFKA_USERNAME", "HIRESTREAM_KAFKA_PASSWORD"):
        sasl_ssl.delenv(name)
    cert, key = certificates.keystore.parent / "broker.pem", certificates.keystore.parent / "broker.key"
    sasl_ssl.setenv("HIRESTREAM_KAFKA_SECURITY_PROTOCOL", "SSL")
    sasl_ssl.setenv("HIRESTREAM_KAFKA_CERT_FILE", str(cert))
    sasl_ssl.setenv("HIRESTREAM_KAFKA_KEY_FILE", str(key))
    security = KafkaSecurity.from_settings(Settings())
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.verify_mode is ssl.CERT_REQUIRED  # the key matched its certificate to load
    options, props = security.kafka_python(), security.librdkafka()
    assert (options["ssl_certfile"], options["ssl_keyfile"]) == (str(cert), str(key))
    assert (props["ssl.certificate.location"], props["ssl.key.location"]) == (str(cert), str(key))
    assert "sasl_mechanism" not in options and "sasl.username" not in props


def test_the_password_is_in_no_repr(sasl_ssl):
    settings = Settings()
    security = KafkaSecurity.from_settings(settings)
    shown = [repr(settings), str(settings), repr(security), security.describe(),
             repr(security.faust_credentials()), str(settings.model_dump())]
    assert not [text for text in shown if PASSWORD in text]


@pytest.mark.parametrize("change, message", [
    ({"HIRESTREAM_KAFKA_PASSWORD": ""}, "SASL_SSL needs HIRESTREAM_KAFKA_PASSWORD"),
    ({"HIRESTREAM_KAFKA_USERNAME": "", "HIRESTREAM_KAFKA_PASSWORD": ""},
     "needs HIRESTREAM_KAFKA_USERNAME and HIRESTREAM_KAFKA_PASSWORD"),
    ({"HIRESTREAM_KAFKA_CA_FILE": "/nonexistent/ca.pem"}, "HIRESTREAM_KAFKA_CA_FILE=/nonexistent/ca.pem: no such file"),
    ({"HIRESTREAM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "protocol is PLAINTEXT: set HIRESTREAM_KAFKA_SECURITY_PROTOCOL"),
    ({"HIRESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "HIRESTREAM_KAFKA_CA_FILE set but .* uses no TLS"),
    ({"KAFKA_BOOTSTRAP": ""}, "describes a cluster to use: set KAFKA_BOOTSTRAP"),
    ({"HIRESTREAM_KAFKA_KEY_FILE": __file__}, "HIRESTREAM_KAFKA_KEY_FILE needs HIRESTREAM_KAFKA_CERT_FILE"),
    ({"HIRESTREAM_KAFKA_SASL_MECHANISM": "GSSAPI"}, "kafka_sasl_mechanism"),
])
def test_incomplete_or_contradictory_security_settings_are_refused(sasl_ssl, change, message):
    for name, value in change.items():
        sasl_ssl.setenv(name, value)
    with pytest.raises(ValidationError, match=message) as refused:
        Settings()
    assert PASSWORD not in str(refused.value)  # pydantic would echo the input: hidden


def test_a_refused_login_says_who_was_refused_and_what_to_check():
    from kafka.errors import SaslAuthenticationFailedError

    security = KafkaSecurity(protocol="SASL_SSL", mechanism="PLAIN", username="alice")
    err = kafka_clients.access_refused(SaslAuthenticationFailedError("invalid credentials"), "h:9093", security)
    assert str(err).startswith("Kafka at h:9093 refused user 'alice' (PLAIN over SASL_SSL)")
    assert "HIRESTREAM_KAFKA_PASSWORD" in str(err)
    assert kafka_clients.access_refused(TimeoutError("slow"), "h:9093", security) is None


def test_a_login_closed_before_its_reason_arrives_reads_as_refused():
    """kafka-python logs each failed bootstrap connection; when the broker's close beat its
    SASL error (seen on a busy machine), only "socket disconnected" is left to go on."""
    import logging

    from kafka.errors import KafkaConnectionError

    def seen(security):
        refusals = kafka_clients._Refusals("h:9093", security)
        logger = logging.getLogger("kafka.net.manager")
        logger.addHandler(refusals)
        try:
            for _ in range(3):
                logger.warning("Bootstrap connection to %s failed: %s (backoff %.2f secs)", "bootstrap-0",
                               KafkaConnectionError("socket disconnected"), 0.1)
        finally:
            logger.removeHandler(refusals)
        return refusals.closed_at_login()

    err = seen(KafkaSecurity(protocol="SASL_SSL", mechanism="SCRAM-SHA-512", username="alice"))
    assert str(err).startswith("Kafka at h:9093 refused user 'alice' (SCRAM-SHA-512 over SASL_SSL): it closed all 3")
    assert seen(KafkaSecurity()) is None  # without a login, a closed connection is just that


def test_every_kafka_python_client_is_made_by_the_factories():
    """A client made directly would connect without the security settings."""
    direct = re.compile(r"\b(KafkaProducer|KafkaConsumer|KafkaAdminClient)\(")
    offenders = [f"{path.relative_to(REPO_ROOT)}:{n}"
                 for folder in ("streams", "serving", "infra", "bench", "index", "models")
                 for path in sorted((REPO_ROOT / folder).rglob("*.py")) if path.name != "kafka_clients.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if direct.search(line)]
    assert offenders == []
