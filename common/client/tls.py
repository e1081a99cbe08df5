"""TLS for calls between our services: a private CA bundle and an optional client certificate, checked at
start, and a plain reason when a handshake fails."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from common.config import ConfigError, Env


@dataclass(frozen=True)
class ClientTLS:
    """What a client trusts and presents. No CA bundle means the system's trusted CAs."""

    ca_bundle: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def verify(self) -> str | bool:
        """requests' `verify`: the bundle's path, or True for the system's CAs. Never False."""
        return self.ca_bundle or True

    @property
    def client_cert(self) -> tuple[str, str] | str | None:
        """requests' `cert`: the certificate and key this client presents (mutual TLS), if any."""
        if self.cert and self.key:
            return (self.cert, self.key)
        return self.cert

    @classmethod
    def from_env(cls, env: Env) -> ClientTLS:
        """CLIENT_CA_BUNDLE, CLIENT_CERT and CLIENT_KEY, loaded once here so a wrong path or a file that
        is not PEM stops the process at start with one line, not every call later."""
        ca_bundle, cert, key = env.str("CLIENT_CA_BUNDLE"), env.str("CLIENT_CERT"), env.str("CLIENT_KEY")
        context = ssl.create_default_context()
        if ca_bundle:
            try:
                context.load_verify_locations(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError("CLIENT_CA_BUNDLE", f"is not a readable PEM file of CA certificates "
                                  f"({ca_bundle!r}: {exc})") from None
        if key and not cert:
            raise ConfigError("CLIENT_KEY", "is set without CLIENT_CERT")
        if cert:
            try:
                context.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                name = "CLIENT_CERT" if key is None else "CLIENT_CERT/CLIENT_KEY"
                raise ConfigError(name, f"is not a readable PEM certificate with its private key ({exc})") from None
        return cls(ca_bundle, cert, key)


def handshake_problem(exc: BaseException) -> str:
    """Why a TLS handshake failed (`exc` is requests' SSLError), in words an operator can act on."""
    reason: BaseException | None = exc
    # requests -> urllib3 MaxRetryError -> urllib3 SSLError -> the ssl module's own error.
    while reason is not None and not isinstance(reason, ssl.SSLError):
        inner = getattr(reason, "reason", None) or (reason.args[0] if reason.args else None)
        reason = inner if isinstance(inner, BaseException) else None
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({reason.verify_message or reason.reason})"
    detail = getattr(reason, "reason", None) or str(reason or exc)
    return f"TLS handshake failed ({detail})"
