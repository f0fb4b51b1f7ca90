"""A throw-away certificate authority and a broker certificate, made with openssl, for
tests that run a TLS listener (tests/test_kafka_security.py)."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BrokerCertificates:
    ca: Path        # the CA's certificate: what clients trust (HIRESTREAM_KAFKA_CA_FILE)
    keystore: Path  # the broker's key and certificate in one PEM file (ssl.keystore.type=PEM)


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed (exit {done.returncode}): {done.stderr[-2000:]}")


def make_certificates(directory: Path, host: str = "127.0.0.1") -> BrokerCertificates:
    """A CA, and a certificate it signed for `host` and localhost (subject alternative
    names, which clients check the address they dialled against)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is not installed (Debian: apt-get install -y openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=hirestream test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=directory)
    # OpenSSL 3 writes unencrypted PKCS#8 ("BEGIN PRIVATE KEY"), the form Kafka's PEM keystore reads.
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}",
             "-keyout", "broker.key", "-out", "broker.csr", cwd=directory)
    (directory / "san.ext").write_text(
        f"subjectAltName=IP:{host},DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "broker.pem", cwd=directory)
    keystore = directory / "broker-keystore.pem"
    keystore.write_text((directory / "broker.key").read_text() + (directory / "broker.pem").read_text())
    return BrokerCertificates(ca=directory / "ca.pem", keystore=keystore)
