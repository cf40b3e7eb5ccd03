"""Fixtures of the reporter's integration tests: an empty database and real SMTP servers.

The SMTP servers are aiosmtpd on this test's event loop, on free loopback ports. They
store what they accept with the project's own sink handler
(:class:`herald_reporter.mail_sink.MailFolder`), and answer DATA from a script first,
which is how a test makes a server refuse for a while (4xx) or for good (5xx).
"""

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_reporter.mail_sink import MailFolder
from herald_reporter.settings import ReporterSettings

HOST = "127.0.0.1"
SMTP_USER = "reporter"
SMTP_PASSWORD = "s3cret-smtp-password"


@pytest.fixture(autouse=True)
async def report_db(clean_db: AsyncEngine) -> AsyncEngine:
    """An empty ledger, and no report claims or first start recorded."""
    async with clean_db.begin() as connection:
        await connection.execute(text("TRUNCATE report_claims, report_origin"))
    return clean_db


Logs = list[MutableMapping[str, Any]]


@pytest.fixture
def logs() -> Iterator[Logs]:
    """Every structlog event of the test, with the context bound through contextvars."""
    capture = structlog.testing.LogCapture()
    previous = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        structlog.configure(**previous)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class ScriptedMailbox:
    """Answers DATA from ``answers`` first (e.g. ``"451 4.3.0 busy"``), then accepts."""

    def __init__(self, folder: Path, answers: list[str]) -> None:
        self.folder = MailFolder(folder, announce=False)
        self.answers = list(answers)
        self.data_commands = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_commands += 1
        if self.answers:
            return self.answers.pop(0)
        return await self.folder.handle_DATA(server, session, envelope)

    @property
    def stored(self) -> list[Path]:
        return self.folder.stored

    def messages(self) -> list[EmailMessage]:
        parsed = []
        for path in self.stored:
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed


@dataclass
class SmtpServer:
    port: int
    mailbox: ScriptedMailbox
    make_protocol: Callable[[], SMTP]
    ssl_context: ssl.SSLContext | None = None
    logins: list[str] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        def connected() -> SMTP:
            self.connections += 1
            return self.make_protocol()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(connected, HOST, self.port, ssl=self.ssl_context)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1: the test's own CA, given as HERALD_SMTP_CA_FILE."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "herald test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path)


class SmtpServers:
    """Starts SMTP servers for one test and stops them after it."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self.servers: list[SmtpServer] = []

    async def start(
        self,
        *,
        answers: list[str] | None = None,
        started: bool = True,
        implicit_tls: Certificate | None = None,
        starttls: Certificate | None = None,
        auth: bool = False,
    ) -> SmtpServer:
        """A server on a free port: ``started=False`` reserves the port for a later start."""
        mailbox = ScriptedMailbox(self._folder / f"mail-{len(self.servers)}", answers or [])
        logins: list[str] = []

        def authenticate(
            _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, data: Any
        ) -> AuthResult:
            assert isinstance(data, LoginPassword)
            logins.append(data.login.decode())
            ok = data.login == SMTP_USER.encode() and data.password == SMTP_PASSWORD.encode()
            # handled=False: aiosmtpd answers the failure itself (535).
            return AuthResult(success=ok, handled=False)

        def protocol() -> SMTP:
            return SMTP(
                mailbox,
                hostname="test-smtp",
                tls_context=starttls.server_context() if starttls else None,
                require_starttls=starttls is not None,
                authenticator=authenticate if auth else None,
                auth_required=auth,
                # Over implicit TLS aiosmtpd does not know the channel is encrypted.
                auth_require_tls=starttls is not None,
            )

        server = SmtpServer(
            port=free_port(),
            mailbox=mailbox,
            make_protocol=protocol,
            ssl_context=implicit_tls.server_context() if implicit_tls else None,
            logins=logins,
        )
        self.servers.append(server)
        if started:
            await server.start()
        return server


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[SmtpServers]:
    servers = SmtpServers(tmp_path)
    yield servers
    for server in servers.servers:
        await server.stop()


def reporter_settings(database_url: str, port: int, **overrides: Any) -> ReporterSettings:
    """Settings for a reporter that mails 127.0.0.1:port, days in Europe/Berlin."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "smtp_host": HOST,
        "smtp_port": port,
        "smtp_from": "herald@reports.example.com",
        "report_recipients": ["ops@example.com", "lead@example.com"],
        "report_timezone": "Europe/Berlin",
        "smtp_timeout": 5.0,
        "smtp_retry_for": 10.0,
        "log_format": "json",
    }
    values.update(overrides)
    return ReporterSettings(_env_file=None, **values)
