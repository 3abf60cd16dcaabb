"""Why the server could not be reached, in words: gRPC reports a TLS mismatch, a refused connection or an
unknown host as UNAVAILABLE with a transport trace (``Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL:
...WRONG_VERSION_NUMBER``); the command says which address and what to check instead."""

from __future__ import annotations

_TARGET = "--target or $FINESERVE_TARGET"

_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("WRONG_VERSION_NUMBER", "wrong version number", "packet length too long"),
     "the server at {target} does not speak TLS (it answered in plaintext): drop --tls, --ca-file and "
     "--client-cert, or point {where} at the server's TLS port"),
    (("CERTIFICATE_VERIFY_FAILED", "unable to get local issuer certificate", "self signed certificate",
      "self-signed certificate"),
     "the certificate of the server at {target} is not signed by a CA this client trusts: pass the CA that "
     "signed it with --ca-file (or $FINESERVE_CA_FILE)"),
    (("Hostname Verification Check failed", "No match found for server name"),
     "the certificate of the server at {target} does not name that host: connect by a name it carries, or pass "
     "it with --server-name"),
    (("Connection refused",),
     "nothing accepts connections at {target} (connection refused): check the host and port ({where}) and "
     "that the server is running"),
    (("errors resolving", "DNS resolution failed", "Domain name not found", "lookup error"),
     "the host of {target} cannot be resolved: check the name in {where}"),
    (("Socket closed", "Connection reset"),
     "the server at {target} closed the connection at once: {closed}"),
    (("Deadline Exceeded", "Timeout occurred", "Connection timed out"),
     "no answer from {target} within the deadline: raise --timeout, or check the address ({where}) and any "
     "firewall on the way"),
)


def _closed(tls: bool, client_cert: bool) -> str:
    """Why a server may hang up as soon as it is reached, given how this client spoke to it."""
    if not tls:
        return "it may speak TLS only; try --tls (with --ca-file when a private CA signed its certificate)"
    if not client_cert:
        return "it may require a client certificate (mutual TLS); pass --client-cert and --client-key"
    return "it may not accept this client certificate (--client-cert): check that its CA signed it"


def explain(message: str, target: str, tls: bool, client_cert: bool = False) -> str | None:
    """The cause of an UNAVAILABLE or DEADLINE_EXCEEDED ``message`` from gRPC, said for ``target`` and how the
    client spoke to it (``tls``, ``client_cert``); ``None`` when the message is the server's own (a server
    shutting down says so itself)."""
    lowered = message.lower()
    for needles, text in _CAUSES:
        if any(n.lower() in lowered for n in needles):
            return text.format(target=target, where=_TARGET, closed=_closed(tls, client_cert))
    if "failed to connect to all addresses" in lowered:
        return f"cannot connect to the server at {target}: check the address ({_TARGET}) and that it is running"
    return None
