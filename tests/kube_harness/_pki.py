"""Throwaway PKI for the test API server.

kube-apiserver refuses to serve the TokenRequest API without a service-account signing key, and RBAC
is only meaningful when clients authenticate, so the harness needs a CA, a serving certificate for
127.0.0.1, client certificates (admin in ``system:masters``, one for the controller manager) and an
RSA service-account key. They are generated fresh for every session with ``cryptography``: nothing is
shared between runs and nothing leaves the temp dir.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class CertPair:
    """A PEM certificate and its unencrypted PEM key, both written to disk."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: CertPair
    serving: CertPair
    admin: CertPair
    controller_manager: CertPair
    front_proxy: CertPair  # lets the apiserver publish a requestheader CA, which kcm expects
    service_account_key: Path  # RSA private key; the public half is derived by the apiserver


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _write_pair(directory: Path, stem: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> CertPair:
    pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair


def _leaf(
    directory: Path,
    stem: str,
    subject: x509.Name,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    *,
    server_names: list[x509.GeneralName] | None = None,
) -> CertPair:
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject, ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(server_names), critical=False)
    return _write_pair(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)


def generate(directory: Path, service_ip: str) -> Pki:
    """Write a fresh CA, serving cert, client certs and service-account key into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca_name = _name("spindle-test-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca = _write_pair(directory, "ca", ca_cert, ca_key)
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip)]
    serving = _leaf(
        directory,
        "apiserver",
        _name("kube-apiserver"),
        ca_cert,
        ca_key,
        server_names=names,
    )
    admin = _leaf(directory, "admin", _name("admin", "system:masters"), ca_cert, ca_key)
    # The controller manager runs as a system:masters member so every controller (the garbage
    # collector deletes arbitrary kinds) has the rights it needs without per-controller accounts.
    kcm = _leaf(
        directory,
        "controller-manager",
        _name("system:kube-controller-manager", "system:masters"),
        ca_cert,
        ca_key,
    )
    front_proxy = _leaf(directory, "front-proxy-client", _name("front-proxy-client"), ca_cert, ca_key)
    sa_key = directory / "service-account.key"
    _write_key(_new_key(), sa_key)
    return Pki(
        ca=ca,
        serving=serving,
        admin=admin,
        controller_manager=kcm,
        front_proxy=front_proxy,
        service_account_key=sa_key,
    )
