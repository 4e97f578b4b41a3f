"""The API key reaches the server and nothing else: not results, run.json, the cache, logs or
error messages, even from a server that echoes the request's headers back."""

from __future__ import annotations

import secrets

import pytest

from qsm_eval.backends import BackendError, create_backend

from .conftest import DEMO_SET, EVAL_SUITE
from .stub_server import Reply, StubServer, completion

VARIABLE = "QSM_SERVED_TEST_KEY"


def echoing_server(key: str):
    """Answers a request with the right key; every third one it refuses, quoting the key."""
    count = {"n": 0}

    def chat(body, headers):
        if headers.get("Authorization") != f"Bearer {key}":
            return Reply(401, {"error": "bad key"})
        count["n"] += 1
        if count["n"] % 3 == 0:
            return Reply(400, {"error": f"rejected; you sent Authorization: {headers['Authorization']}"})
        return Reply(200, completion("SPEECH"))
    return chat


def test_the_key_is_sent_but_written_nowhere(pytester, monkeypatch):
    key = "sk-qsm-" + secrets.token_hex(16)
    monkeypatch.setenv(VARIABLE, key)
    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    with StubServer(echoing_server(key)) as stub:
        result = pytester.runpytest(
            "-p", "no:cacheprovider", "--qsm-segments", str(DEMO_SET), "-k", "100ms", "--qsm-limit", "6",
            "--qsm-model", "openai", "--qsm-endpoint", stub.url, "--qsm-scoring", "generate",
            "--qsm-api-key-env", VARIABLE, "--qsm-out", str(pytester.path / "run"),
            "--qsm-cache", str(pytester.path / "cache"), "--junitxml", str(pytester.path / "junit.xml"),
            "-o", "log_file=" + str(pytester.path / "run.log"), "-o", "log_file_level=DEBUG", "-rA")
    assert all(r.headers.get("Authorization") == f"Bearer {key}" for r in stub.chat_requests())
    assert len(stub.chat_requests()) == 6
    # Two of the six were refused by a server that quoted the key: they fail, redacted.
    assert result.parseoutcomes().get("failed") == 2
    output = result.stdout.str() + result.stderr.str()
    assert f"<${VARIABLE}>" in output
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert {"results.parquet", "run.json", "predictions.sqlite", "junit.xml", "run.log"} <= {p.name for p in written}
    leaks = [p for p in written if key.encode() in p.read_bytes()]
    assert leaks == [] and key not in output


def test_a_refused_key_is_one_error_that_does_not_show_it(monkeypatch):
    key = "sk-qsm-" + secrets.token_hex(16)
    monkeypatch.setenv(VARIABLE, key)

    with StubServer(lambda body, headers: Reply(200, completion("x")), models_status=401) as stub:
        with pytest.raises(BackendError) as error:
            create_backend("openai", {"endpoint": stub.url, "scoring": "generate", "api_key_env": VARIABLE})
    assert f"refused with HTTP 401, sent the key in ${VARIABLE}" in str(error.value)
    assert key not in str(error.value) and key not in repr(error.value)


def test_a_named_key_variable_must_exist_and_be_a_name(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    with StubServer(lambda body, headers: Reply(200, completion("x"))) as stub:
        with pytest.raises(BackendError, match=f"no such environment variable is set.*export {VARIABLE}"):
            create_backend("openai", {"endpoint": stub.url, "api_key_env": VARIABLE})
        with pytest.raises(BackendError, match="NAME of the variable"):
            create_backend("openai", {"endpoint": stub.url, "api_key_env": "sk-abc 123"})


def test_credentials_in_an_endpoint_url_are_refused():
    with pytest.raises(BackendError, match="must not carry credentials"):
        create_backend("openai", {"endpoint": "http://user:sk-secret@127.0.0.1:1"})
