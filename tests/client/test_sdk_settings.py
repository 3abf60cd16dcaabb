"""Configuration: each setting from its argument, else its FINESERVE_* variable, else the default; the client
connects where the environment says and sends the key it names."""

from __future__ import annotations

import pytest

from fineserve.v1 import common_pb2, models_pb2, models_pb2_grpc
from fineserve_client import Client, Settings
from fineserve_client.connection import ENV


class KeyEcho(models_pb2_grpc.ModelsServicer):
    """Answers GetModel with the caller's authorization header as the model's base."""

    def GetModel(self, request, context):
        auth = dict(context.invocation_metadata()).get("authorization", "")
        return models_pb2.Model(ref=common_pb2.ModelRef(name=request.ref.name, version=1), base=auth)


@pytest.fixture
def no_env(monkeypatch):
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_defaults_without_environment(no_env):
    s = Settings.from_env()
    assert (s.target, s.api_key, s.tls, s.timeout, s.max_attempts) == ("localhost:50051", None, False, 60.0, 4)


def test_environment_then_arguments(no_env):
    env = {"FINESERVE_TARGET": "fs.internal:443", "FINESERVE_API_KEY": "fsk_env", "FINESERVE_TLS": "yes",
           "FINESERVE_CA_FILE": "/ca.pem", "FINESERVE_SERVER_NAME": "fs", "FINESERVE_TIMEOUT": "5",
           "FINESERVE_MAX_ATTEMPTS": "2"}
    s = Settings.from_env(env)
    assert (s.target, s.api_key, s.tls, s.ca_file, s.server_name, s.timeout, s.max_attempts) == (
        "fs.internal:443", "fsk_env", True, "/ca.pem", "fs", 5.0, 2)
    given = Settings.from_env(env, target="other:1", tls=False, timeout=9, api_key=None)
    assert (given.target, given.tls, given.timeout, given.api_key) == ("other:1", False, 9, "fsk_env")
    assert Settings.from_env({"FINESERVE_TIMEOUT": "none"}).timeout is None
    assert Settings.from_env({"FINESERVE_TARGET": "  "}).target == "localhost:50051"  # empty: unset


@pytest.mark.parametrize(("var", "value"), [("FINESERVE_TLS", "maybe"), ("FINESERVE_TIMEOUT", "soon"),
                                            ("FINESERVE_TIMEOUT", "-1"), ("FINESERVE_MAX_ATTEMPTS", "0")])
def test_bad_values_name_the_variable(var, value):
    with pytest.raises(ValueError, match=var):
        Settings.from_env({var: value})


def test_client_connects_where_the_environment_says(serve, no_env):
    target = serve(KeyEcho())
    no_env.setenv("FINESERVE_TARGET", target)
    no_env.setenv("FINESERVE_API_KEY", "fsk_from_env")
    no_env.setenv("FINESERVE_TIMEOUT", "7")
    with Client() as client:
        assert client.target == target and client.timeout == 7.0
        assert client.get_model("pets").base == "Bearer fsk_from_env"
    with Client(api_key="fsk_given") as client:  # the argument wins
        assert client.get_model("pets").base == "Bearer fsk_given"
    with Client(timeout=None) as client:  # None: no deadline, not "unset"
        assert client.timeout is None


def test_settings_object_skips_the_environment(serve, no_env):
    target = serve(KeyEcho())
    no_env.setenv("FINESERVE_API_KEY", "fsk_from_env")
    with Client(settings=Settings(target=target)) as client:
        assert client.get_model("pets").base == ""
    with Client(settings=Settings(target="nowhere:1"), target=target, retry=2) as client:
        assert client.target == target and client.retry.max_attempts == 2
        assert client.get_model("pets").name == "pets"
