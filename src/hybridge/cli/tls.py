"""``hybridge tls``: check a peer's certificate the way every Hybridge connection does.

- ``tls verify CHAIN.pem --name NAME``: judge a chain saved to a file;
- ``tls probe HOST:PORT --name NAME``: connect, show the chain the peer sends, judge it.

Both print the verdict of ``core.tlsverify.verify_peer``. Exit statuses: 0 accepted,
1 refused (or, for ``probe``, no handshake), 2 bad input.
"""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509

from hybridge.cli.common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    DataDirOption,
    JsonOption,
    fail,
    print_json,
    resolve_data_dir,
)
from hybridge.core.tlsverify import (
    Accepted,
    AnchorSet,
    CnRule,
    NamePolicy,
    PeerRole,
    Verdict,
    VerificationError,
    anchor_set_for,
    fingerprint,
    load_chain,
    verify_peer,
)

tls_app = typer.Typer(
    name="tls",
    help="Check a peer's TLS certificate: path to the trust store, then the name rule.",
    no_args_is_help=True,
)


class RoleChoice(enum.StrEnum):
    server = "server"
    client = "client"


class CnChoice(enum.StrEnum):
    never = "never"
    when_no_san = "when-no-san"


NameOption = Annotated[
    str,
    typer.Option(
        "--name",
        help="The name the peer must carry (the zone's subject name), e.g. "
        "callservice.example.com; an IP address matches iPAddress SANs only.",
    ),
]
CaFileOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        help="PEM file of trust anchors to use instead of the data directory's trust store.",
        dir_okay=False,
    ),
]
CnOption = Annotated[
    CnChoice,
    typer.Option(
        "--cn",
        help="Use the subject CN: never, or only when the certificate has no DNS/URI SAN.",
        case_sensitive=False,
    ),
]
WildcardsOption = Annotated[
    bool,
    typer.Option(
        "--wildcards",
        help="Accept an RFC 9525 wildcard ('*' as the whole left-most label) in a DNS SAN.",
    ),
]


def _policy(name: str, cn: CnChoice, wildcards: bool) -> NamePolicy:
    rule = CnRule.NEVER if cn is CnChoice.never else CnRule.WHEN_NO_SAN
    try:
        return NamePolicy(name, cn=rule, wildcards=wildcards)
    except VerificationError as exc:
        fail(str(exc))


def _anchors(ca_file: Path | None, data_dir: Path | None) -> AnchorSet:
    if ca_file is not None and data_dir is not None:
        fail("give either --ca-file or --data-dir, not both")
    if ca_file is not None:
        try:
            data = ca_file.read_bytes()
        except OSError as exc:
            fail(f"cannot read CA file {str(ca_file)!r}: {exc.strerror}")
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            fail(f"CA file {str(ca_file)!r} holds no readable PEM certificate ({exc})")
        return anchor_set_for(certs)
    directory = resolve_data_dir(data_dir)
    if not directory.is_dir():
        fail(
            f"data directory {str(directory)!r} does not exist; give --data-dir of a "
            "connector or edge, or --ca-file"
        )
    from hybridge.truststore import TrustUse, open_trust_store

    store = open_trust_store(directory)
    try:
        # Platform anchors decide; the bootstrap set is loaded only so that a chain
        # reaching nothing else is reported as bootstrap_only, not as a plain unknown CA.
        return anchor_set_for(
            store.anchors_for(TrustUse.PLATFORM), store.anchors_for(TrustUse.REGISTRATION)
        )
    finally:
        store.close()


def _parse_time(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"--at {value!r} is not an ISO 8601 time; give e.g. 2026-06-01T12:00:00Z")
    # A time without a zone is read as UTC (what certificates use).
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _describe(cert: x509.Certificate) -> dict[str, str]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "sha256": fingerprint(cert),
    }


def _print_chain(chain: list[x509.Certificate] | tuple[x509.Certificate, ...]) -> None:
    typer.echo("chain sent by the peer:")
    for index, cert in enumerate(chain):
        info = _describe(cert)
        typer.echo(f"  [{index}] {info['subject'] or '(empty subject)'}")
        typer.echo(f"      issuer  {info['issuer']}")
        typer.echo(f"      valid   {info['not_before']} .. {info['not_after']}")
        typer.echo(f"      sha256  {info['sha256']}")


def _print_verdict(verdict: Verdict) -> int:
    if isinstance(verdict, Accepted):
        note = " — decided by the legacy subject CN" if verdict.cn_decided else ""
        typer.echo(f"accepted: {verdict.identity} ({verdict.source.value}){note}")
        if verdict.via_bootstrap:
            typer.echo(f"  via bootstrap anchor sha256 {verdict.anchor_sha256}")
        return EXIT_OK
    typer.echo(f"refused ({verdict.reason.value}): {verdict.explanation}")
    return EXIT_PROBLEMS


@tls_app.command("verify")
def verify_command(
    chain_file: Annotated[
        Path, typer.Argument(help="PEM file: the peer's certificate first, then intermediates.")
    ],
    name: NameOption,
    role: Annotated[
        RoleChoice, typer.Option("--role", help="The peer's TLS role.", case_sensitive=False)
    ] = RoleChoice.server,
    ca_file: CaFileOption = None,
    data_dir: DataDirOption = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Validation time, ISO 8601 (default: now; no zone = UTC)."),
    ] = None,
    cn: CnOption = CnChoice.when_no_san,
    wildcards: WildcardsOption = False,
    as_json: JsonOption = False,
) -> None:
    """Judge a saved chain: exit 0 accepted, 1 refused (with the reason), 2 bad input."""
    policy = _policy(name, cn, wildcards)
    try:
        data = chain_file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {str(chain_file)!r}: {exc.strerror}")
    try:
        leaf, intermediates = load_chain(data)
    except VerificationError as exc:
        fail(f"{str(chain_file)!r}: {exc}")
    anchors = _anchors(ca_file, data_dir)
    verdict = verify_peer(
        leaf,
        intermediates,
        anchors=anchors,
        names=policy,
        role=PeerRole(role.value),
        at=_parse_time(at),
    )
    if as_json:
        print_json(
            {
                "name": policy.expected,
                "role": role.value,
                "chain": [_describe(c) for c in [leaf, *intermediates]],
                **verdict.to_dict(),
            }
        )
        raise typer.Exit(EXIT_OK if verdict.accepted else EXIT_PROBLEMS)
    raise typer.Exit(_print_verdict(verdict))


@tls_app.command("probe")
def probe_command(
    target: Annotated[str, typer.Argument(help="HOST:PORT of the TLS server, e.g. [::1]:5062.")],
    name: NameOption,
    client_cert: Annotated[
        Path | None,
        typer.Option("--client-cert", help="PEM certificate (chain) to present.", dir_okay=False),
    ] = None,
    client_key: Annotated[
        Path | None,
        typer.Option("--client-key", help="PEM private key of --client-cert.", dir_okay=False),
    ] = None,
    ca_file: CaFileOption = None,
    data_dir: DataDirOption = None,
    cn: CnOption = CnChoice.when_no_san,
    wildcards: WildcardsOption = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for connect and handshake.")
    ] = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Connect, show the chain the server sends and our verdict on it (exit 0/1/2)."""
    from hybridge.tls import TlsError, parse_target, probe

    policy = _policy(name, cn, wildcards)
    try:
        host, port = parse_target(target)
        anchors = _anchors(ca_file, data_dir)
        result = probe(
            host,
            port,
            names=policy,
            anchors=anchors,
            client_cert=client_cert,
            client_key=client_key,
            timeout=timeout,
        )
    except TlsError as exc:
        fail(str(exc), exc.exit_code)
    if as_json:
        print_json(
            {
                "target": f"{host}:{port}",
                "name": policy.expected,
                "tls_version": result.tls_version,
                "cipher": result.cipher,
                "chain": [_describe(c) for c in result.chain],
                **result.verdict.to_dict(),
            }
        )
        raise typer.Exit(EXIT_OK if result.verdict.accepted else EXIT_PROBLEMS)
    typer.echo(f"connected to {host}:{port} ({result.tls_version}, {result.cipher})")
    _print_chain(result.chain)
    raise typer.Exit(_print_verdict(result.verdict))
