"""How the project's clients authenticate to Kafka: the one place that turns the
security settings (HIRESTREAM_KAFKA_SECURITY_PROTOCOL and friends, streams.settings)
into each client library's own options.

The project speaks to Kafka through three libraries, each with its own names:

- kafka-python (producers, the index replica, recorders, admin): `kafka_python()`,
  used only by the factories in `streams.kafka_clients`;
- faust over aiokafka (the workers, the scoring agent): `faust_credentials()`, what
  `faust.App(broker_credentials=...)` takes (faust hands it to every aiokafka
  consumer, producer and admin call it makes);
- librdkafka (kcat, any librdkafka tool): `librdkafka()`, the properties a `kcat -F`
  file holds (`hirestream settings kafka-properties` writes one).

The password is a `SecretStr` until the moment a client library needs the text; no
repr here or in faust's credentials shows it.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from streams.settings import Settings, get_settings

TLS_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True)
class KafkaSecurity:
    """What a client presents to the cluster: transport, SASL user, trusted CA, client cert."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "PLAIN"
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> KafkaSecurity:
        s = settings or get_settings()
        return cls(protocol=s.kafka_security_protocol, mechanism=s.kafka_sasl_mechanism,
                   username=s.kafka_username, password=s.kafka_password, ca_file=s.kafka_ca_file,
                   cert_file=s.kafka_cert_file, key_file=s.kafka_key_file)

    @property
    def tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    @property
    def sasl(self) -> bool:
        return self.protocol in SASL_PROTOCOLS

    def describe(self) -> str:
        """Who connects how, for error messages: never the password."""
        if self.sasl:
            return f"user {self.username!r} ({self.mechanism} over {self.protocol})"
        return self.protocol

    def _password(self) -> str:
        return self.password.get_secret_value() if self.password is not None else ""

    # -- kafka-python -------------------------------------------------------------------

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for KafkaProducer, KafkaConsumer and KafkaAdminClient."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            # kafka-python checks the host name against the certificate and, without a
            # CA file, trusts the system's CAs: what a managed cluster's certificate needs.
            options.update(ssl_check_hostname=True, ssl_cafile=_text(self.ca_file),
                           ssl_certfile=_text(self.cert_file), ssl_keyfile=_text(self.key_file))
        if self.sasl:
            options.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self._password())
        return options

    # -- faust / aiokafka ---------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context aiokafka connects with (None without TLS): verifies the
        cluster's certificate and host name against the CA file, or the system's CAs."""
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_text(self.ca_file))
        if self.cert_file is not None:
            context.load_cert_chain(str(self.cert_file), keyfile=_text(self.key_file))
        return context

    def faust_credentials(self) -> Any:
        """`faust.App(broker_credentials=...)`: None for PLAINTEXT, faust's SASL or SSL
        credentials otherwise (its SASLCredentials turns SASL_SSL on when given a context)."""
        import faust

        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self._password(),
                                         mechanism=self.mechanism, ssl_context=self.ssl_context())
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

    # -- librdkafka (kcat) --------------------------------------------------------------

    def librdkafka(self) -> dict[str, str]:
        """librdkafka's properties (kcat `-X name=value`, or one per line in a `kcat -F` file)."""
        props = {"security.protocol": self.protocol.lower()}
        if self.sasl:
            props.update({"sasl.mechanisms": self.mechanism, "sasl.username": self.username or "",
                          "sasl.password": self._password()})
        if self.tls:
            files = {"ssl.ca.location": self.ca_file, "ssl.certificate.location": self.cert_file,
                     "ssl.key.location": self.key_file}
            props.update({name: str(path) for name, path in files.items() if path is not None})
        return props


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None
