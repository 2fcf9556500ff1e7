"""Request-level behaviour of the API client, against pytest-httpserver."""

from __future__ import annotations

import time

import pytest
from werkzeug import Response

from anthropic_compliance_input.api import Client, Query
from anthropic_compliance_input.config import ApiConfig
from anthropic_compliance_input.errors import PluginError

KEY = "sk-ant-api01-request-level-test-key-0000"
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
