"""Every kafka-python client the project makes is made here, with the cluster's address
and the security settings (streams.kafka_security): no command, replica or probe can
forget the credentials (tests/test_kafka_clients.py fails on a client made elsewhere).

A cluster that refuses the credentials raises `KafkaAccessRefused`, whose message
says who was refused and how, never the password. (The workers' faust app takes the
same settings through `KafkaSecurity.faust_credentials`.)
"""
from __future__ import annotations

import logging
import ssl
from typing import Any

from streams.kafka_security import KafkaSecurity


class KafkaAccessRefused(RuntimeError):
    """The cluster refused the client's credentials or its TLS handshake."""


def client_options(bootstrap: str, security: KafkaSecurity | None = None) -> dict[str, Any]:
    """Where and how a kafka-python client connects: the address and the security options."""
    security = security or KafkaSecurity.from_settings()
    return {"bootstrap_servers": bootstrap, **security.kafka_python()}


def producer(bootstrap: str, security: KafkaSecurity | None = None, **options: Any):
    from kafka import KafkaProducer

    return _made(KafkaProducer, bootstrap, security, options)


def consumer(bootstrap: str, security: KafkaSecurity | None = None, **options: Any):
    from kafka import KafkaConsumer

    return _made(KafkaConsumer, bootstrap, security, options)


def admin(bootstrap: str, security: KafkaSecurity | None = None, **options: Any):
    from kafka import KafkaAdminClient

    return _made(KafkaAdminClient, bootstrap, security, options)


def check_access(bootstrap: str, security: KafkaSecurity | None = None) -> None:
    """Log in once before a worker starts, so that refused credentials end it with
    `KafkaAccessRefused` (who was refused, which settings to check) instead of aiokafka's
    retries and tracebacks. Only where there is a login or a certificate to refuse."""
    security = security or KafkaSecurity.from_settings()
    if security.protocol != "PLAINTEXT":
        admin(bootstrap, security).close()


def _made(client_class, bootstrap: str, security: KafkaSecurity | None, options: dict[str, Any]):
    security = security or KafkaSecurity.from_settings()
    failures = _Refusals(bootstrap, security)
    logging.getLogger("kafka").addHandler(failures)
    try:
        return client_class(**client_options(bootstrap, security), **options)
    except Exception as err:
        refused = access_refused(err, bootstrap, security) or failures.refused or failures.closed_at_login()
        if refused is None:
            raise
        raise refused from None  # the cause's traceback would show the client's options
    finally:
        logging.getLogger("kafka").removeHandler(failures)


class _Refusals(logging.Handler):
    """The last refusal kafka-python logs while a client bootstraps: it retries a refused
    login until its bootstrap timeout and then raises only "Unable to bootstrap", so the
    refusal itself is known only from its log records."""

    def __init__(self, bootstrap: str, security: KafkaSecurity) -> None:
        super().__init__(logging.WARNING)
        self.bootstrap, self.security = bootstrap, security
        self.refused: KafkaAccessRefused | None = None
        self.disconnects = 0  # bootstrap connections closed by the broker before they were ready

    def emit(self, record: logging.LogRecord) -> None:
        for arg in record.args if isinstance(record.args, tuple) else ():
            if isinstance(arg, BaseException):
                self.refused = access_refused(arg, self.bootstrap, self.security) or self.refused
                if str(record.msg).startswith("Bootstrap connection to") and "socket disconnected" in str(arg):
                    self.disconnects += 1

    def closed_at_login(self) -> KafkaAccessRefused | None:
        """A broker that refuses a SASL login sends the error and closes the connection;
        kafka-python often sees the close first (on a busy machine, every time) and
        reports only "socket disconnected". A SASL client whose every bootstrap connection
        ended that way, with no other error, was refused."""
        if not (self.security.sasl and self.disconnects):
            return None
        return KafkaAccessRefused(
            f"Kafka at {self.bootstrap} refused {self.security.describe()}: it closed all "
            f"{self.disconnects} connections during the login (the client saw the close before "
            "the broker's reason). The user, password or mechanism is most likely wrong. Check "
            "HIRESTREAM_KAFKA_USERNAME, HIRESTREAM_KAFKA_PASSWORD and HIRESTREAM_KAFKA_SASL_MECHANISM")


def access_refused(err: BaseException, bootstrap: str, security: KafkaSecurity) -> KafkaAccessRefused | None:
    """A clear error for a refused login or TLS handshake; None for any other error."""
    from kafka.errors import SaslAuthenticationFailedError

    if isinstance(err, SaslAuthenticationFailedError):
        return KafkaAccessRefused(
            f"Kafka at {bootstrap} refused {security.describe()}: {err}. Check "
            "HIRESTREAM_KAFKA_USERNAME, HIRESTREAM_KAFKA_PASSWORD and HIRESTREAM_KAFKA_SASL_MECHANISM")
    if isinstance(err, ssl.SSLError) or isinstance(err.__cause__ or err.__context__, ssl.SSLError):
        return KafkaAccessRefused(
            f"TLS with Kafka at {bootstrap} failed ({security.protocol}): {err}. Check "
            "HIRESTREAM_KAFKA_SECURITY_PROTOCOL and HIRESTREAM_KAFKA_CA_FILE")
    return None
