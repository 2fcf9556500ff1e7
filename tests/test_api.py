"""The API: request-level behaviour of the client against pytest-httpserver, then what the CLI does
when the API is unreachable, refuses the key or a filter, or serves TLS, against the simulator."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from werkzeug import Response

from anthropic_compliance_input.api import Client, Query
from anthropic_compliance_input.config import ApiConfig
from anthropic_compliance_input.errors import PluginError

from helpers import Plugin, assert_one_line_error, child_env

KEY = "sk-ant-api01-request-level-test-key-0000"  # the client tests' own; the CLI tests use helpers.KEY
PAGE = {"data": [], "has_more": False, "first_id": None, "last_id": None}
PATH = "/v1/compliance/activities"


def client_for(httpserver, **kw) -> Client:
    settings = {"retry_backoff_seconds": 0.01, "max_retries": 4, **kw}
    api = ApiConfig(base_url=httpserver.url_for("").rstrip("/"), **settings)
    return Client(api, KEY)


def test_headers_and_query_parameters(httpserver):
    httpserver.expect_request(PATH, method="GET").respond_with_json(PAGE, headers={"request-id": "req_1"})
    query = Query(limit=1000, gte="2026-01-01T00:00:00Z", lt="2026-01-02T00:00:00.5Z", after_id="activity_x",
                  activity_types=("a", "b"), organization_ids=("org_1",), actor_ids=("user_1", "user_2"))
    page = client_for(httpserver).get_page(query)
    assert page.request_id == "req_1" and page.data == []
    request, _ = httpserver.log[0]
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["User-Agent"].startswith("anthropic-compliance-input/")
    args = request.args
    assert args.getlist("activity_types[]") == ["a", "b"]
    assert args.getlist("actor_ids[]") == ["user_1", "user_2"] and args.getlist("organization_ids[]") == ["org_1"]
    assert args["created_at.gte"] == "2026-01-01T00:00:00Z" and args["created_at.lt"] == "2026-01-02T00:00:00.5Z"
    assert args["order"] == "asc" and args["limit"] == "1000" and args["after_id"] == "activity_x"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
def test_server_errors_are_retried_then_succeed(httpserver, status):
    httpserver.expect_ordered_request(PATH).respond_with_json({"type": "error", "error": {"type": "api_error"}},
                                                              status=status)
    httpserver.expect_ordered_request(PATH).respond_with_json(PAGE)
    client = client_for(httpserver)
    client.get_page(Query(limit=1))
    assert len(httpserver.log) == 2 and client.counters.retries == 1


def test_x_should_retry_false_is_not_retried(httpserver):
    httpserver.expect_request(PATH).respond_with_json(
        {"type": "error", "error": {"type": "api_error", "message": "deterministic"}}, status=500,
        headers={"x-should-retry": "false"})
    with pytest.raises(PluginError) as err:
        client_for(httpserver).get_page(Query(limit=1))
    assert err.value.code == 69 and len(httpserver.log) == 1
    assert "the API said not to retry it" in str(err.value) and "after" not in str(err.value)


@pytest.mark.parametrize("status,code", [(400, 65), (401, 77), (403, 77), (404, 78)])
def test_client_errors_are_never_retried(httpserver, status, code):
    httpserver.expect_request(PATH).respond_with_json(
        {"type": "error", "error": {"type": "x", "message": "nope"}, "request_id": "req_9"}, status=status,
        headers={"request-id": "req_9"})
    with pytest.raises(PluginError) as err:
        client_for(httpserver).get_page(Query(limit=1))
    assert err.value.code == code and len(httpserver.log) == 1
    assert "request-id req_9" in str(err.value) and "nope" in str(err.value)


def test_429_honours_retry_after(httpserver):
    httpserver.expect_ordered_request(PATH).respond_with_json(
        {"type": "error", "error": {"type": "rate_limit_error"}}, status=429, headers={"retry-after": "1"})
    httpserver.expect_ordered_request(PATH).respond_with_json(PAGE)
    started = time.monotonic()
    client_for(httpserver).get_page(Query(limit=1))
    assert time.monotonic() - started >= 0.95 and len(httpserver.log) == 2


def test_429_past_the_budget_exits_75(httpserver):
    httpserver.expect_request(PATH).respond_with_json(
        {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}, status=429,
        headers={"retry-after": "0"})
    with pytest.raises(PluginError) as err:
        client_for(httpserver, max_retries=2).get_page(Query(limit=1))
    assert err.value.code == 75 and len(httpserver.log) == 3


@pytest.mark.parametrize("body,ctype,needle", [
    ("<html><body>502 Bad Gateway</body></html>", "text/html", "not JSON (a proxy page?)"),
    ('{"data": [', "application/json", "not valid JSON"),
    ('{"items": []}', "application/json", "'data' is missing"),
    ('{"data": [], "has_more": "no"}', "application/json", "'has_more'"),
    ('{"data": [], "has_more": false, "last_id": 5}', "application/json", "'last_id'"),
    ('{"data": [{}], "has_more": true, "last_id": null}', "application/json", "'last_id' is empty"),
])
def test_unusable_200_bodies_are_retried_never_taken_as_empty(httpserver, body, ctype, needle):
    httpserver.expect_ordered_request(PATH).respond_with_response(Response(body, 200, content_type=ctype))
    httpserver.expect_ordered_request(PATH).respond_with_json(PAGE)
    client_for(httpserver).get_page(Query(limit=1))
    assert len(httpserver.log) == 2
    httpserver.clear()
    httpserver.expect_request(PATH).respond_with_response(Response(body, 200, content_type=ctype))
    with pytest.raises(PluginError) as err:
        client_for(httpserver, max_retries=1).get_page(Query(limit=1))
    assert err.value.code == 69 and needle in str(err.value)


def test_low_remaining_budget_slows_down_before_the_429(httpserver):
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    httpserver.expect_request(PATH).respond_with_json(PAGE, headers={
        "anthropic-ratelimit-requests-limit": "600", "anthropic-ratelimit-requests-remaining": "1",
        "anthropic-ratelimit-requests-reset": reset})
    started = time.monotonic()
    client_for(httpserver).get_page(Query(limit=1))
    assert time.monotonic() - started >= 0.4  # (reset - now) / (remaining + 1)


def test_https_is_required_except_on_loopback():
    with pytest.raises(ValueError):
        ApiConfig(base_url="http://api.anthropic.com")
    assert ApiConfig(base_url="http://127.0.0.1:8080").base_url == "http://127.0.0.1:8080"
    assert ApiConfig(base_url="http://[::1]:8080/").base_url == "http://[::1]:8080"
    assert ApiConfig(base_url="http://localhost:1").base_url == "http://localhost:1"


# Through the CLI, against the simulator: each API failure is one line and its exit code.

def test_unreachable_api_exits_69_without_moving_the_cursor(plugin: Plugin):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    plugin.configure(api={"base_url": f"http://127.0.0.1:{port}", "max_retries": 2})
    result = plugin.run()
    assert_one_line_error(result, 69, "API unreachable", f"127.0.0.1:{port}", "cursor did not move")
    state = plugin.state()
    assert state["high_water"] == state["origin"]
    assert "API unreachable" in state["last_error"]


def test_wrong_key_exits_77_with_the_api_message_and_a_hint(plugin: Plugin):
    result = plugin.run(env=child_env(ANTHROPIC_COMPLIANCE_API_KEY="sk-ant-api01-wrong-key-000000000000000"))
    assert_one_line_error(result, 77, "API 401 authentication_error", "invalid or has been revoked",
                          "request-id req_", "key status")
    assert "sk-ant-api01-wrong-key-000000000000000" not in result.stderr


def test_key_without_scope_exits_77(plugin: Plugin, model):
    model.keys["sk-ant-api01-userdata-only-0000000000000"] = {"read:compliance_user_data"}
    result = plugin.run(env=child_env(ANTHROPIC_COMPLIANCE_API_KEY="sk-ant-api01-userdata-only-0000000000000"))
    assert_one_line_error(result, 77, "403 permission_error", "read:compliance_activities")


def test_filter_the_api_rejects_exits_65(plugin: Plugin):
    plugin.configure(api={"activity_types": ["no_such_type"]})
    assert_one_line_error(plugin.run(), 65, "400 invalid_request_error", "no_such_type", "filters in [api]")


def test_tls_is_verified_and_ca_bundle_is_honoured(plugin: Plugin, model, tmp_path):
    from anthropic_compliance_input.simulator import SimServer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    import time

    model.generate(10, time.time() - 3600, time.time() - 120)
    with SimServer(model, tls=(str(cert), str(key))) as server:
        assert server.url.startswith("https://")
        plugin.configure(api={"base_url": server.url, "max_retries": 1})
        untrusted = plugin.run()
        assert_one_line_error(untrusted, 69, "TLS error talking to https://127.0.0.1", "ca_bundle")
        plugin.configure(api={"base_url": server.url, "ca_bundle": str(cert)})
        trusted = plugin.run()
    assert trusted.rc == 0 and len(trusted.ids) == 10
