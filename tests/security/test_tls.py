"""Mutual TLS with the SDK and the CLI: a client certificate from the server's client CA gets in; no
certificate, a certificate from another CA, or plaintext do not."""

from __future__ import annotations

import json

import pytest

from fineserve_client import Client, FineserveError, Unauthenticated, Unavailable, tls_credentials
from fineserve_client.cli import main as cli_main
from security.conftest import SecureServer, Trained


def test_sdk_with_client_certificate_and_key(secure: SecureServer, alice_model: Trained) -> None:
    with secure.client("alice") as c:
        assert c.get_model("pets", 1).tenant == "alice"
        assert [r.top for r in c.classify("pets", alice_model.images, top_k=2, version=1)] == alice_model.answers
    creds = tls_credentials(secure.pki.ca, secure.pki.client_cert, secure.pki.client_key)
    with Client(secure.target, credentials=creds, api_key=secure.keys["alice"]) as c:
        assert c.get_model("pets", 1).ref.version == 1


@pytest.mark.parametrize("how", ["no client certificate", "certificate from another CA", "plaintext",
                                 "server not trusted"])
def test_refused_without_a_valid_client_certificate(secure: SecureServer, how: str) -> None:
    pki = secure.pki
    kw: dict = {
        "no client certificate": {"ca_file": pki.ca},
        "certificate from another CA": {"ca_file": pki.ca, "client_cert": pki.rogue_cert,
                                        "client_key": pki.rogue_key},
        "plaintext": {},
        "server not trusted": {"ca_file": pki.rogue_cert, "client_cert": pki.client_cert,
                               "client_key": pki.client_key},
    }[how]
    with Client(secure.target, api_key=secure.keys["alice"], timeout=10, **kw) as c, pytest.raises(FineserveError) as e:
        c.list_models()
    assert isinstance(e.value, Unavailable), e.value
    assert secure.proc.healthy()


def test_client_certificate_alone_is_not_an_identity(secure: SecureServer) -> None:
    """mTLS admits the connection; the API key still decides the tenant."""
    pki = secure.pki
    with Client(secure.target, ca_file=pki.ca, client_cert=pki.client_cert, client_key=pki.client_key,
                timeout=10) as c, pytest.raises(Unauthenticated):
        c.list_models()


def test_sdk_option_checks(secure: SecureServer) -> None:
    with pytest.raises(ValueError, match="go together"):
        tls_credentials(secure.pki.ca, client_cert=secure.pki.client_cert)
    with pytest.raises(ValueError, match="cannot read"):
        tls_credentials("/nonexistent/ca.pem")
    with pytest.raises(ValueError, match="api_key"):
        Client(secure.target, api_key="bad\nkey")


def test_cli_with_mutual_tls_and_api_key(secure: SecureServer, alice_model: Trained,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pki = secure.pki
    tls = ["--target", secure.target, "--ca-file", str(pki.ca), "--client-cert", str(pki.client_cert),
           "--client-key", str(pki.client_key)]
    assert cli_main([*tls, "--api-key", secure.keys["alice"], "--json", "models"]) == 0
    out = json.loads(capsys.readouterr().out)
    # alice's models: "pets", and any other test of the shared server's (e.g. one trained from object storage)
    assert ("pets", "alice") in [(m["ref"]["name"], m["tenant"]) for m in out]
    assert all(m["tenant"] == "alice" for m in out)
    # the key from the environment; options after the sub-command work too
    monkeypatch.setenv("FINESERVE_API_KEY", secure.keys["carol"])
    assert cli_main(["models", *tls, "--json"]) == 0
    assert all(m["tenant"] == "carol" for m in json.loads(capsys.readouterr().out))
    # TLS files from the environment
    monkeypatch.setenv("FINESERVE_CA_FILE", str(pki.ca))
    monkeypatch.setenv("FINESERVE_CLIENT_CERT", str(pki.client_cert))
    monkeypatch.setenv("FINESERVE_CLIENT_KEY", str(pki.client_key))
    assert cli_main(["--target", secure.target, "jobs"]) == 0
    capsys.readouterr()
    monkeypatch.delenv("FINESERVE_API_KEY")
    assert cli_main(["--target", secure.target, "models"]) == 4  # refused: exits 4
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    assert cli_main(["--target", secure.target, "--api-key", "fsk_wrong", "model", "pets"]) == 4
    assert "invalid API key" in capsys.readouterr().err
