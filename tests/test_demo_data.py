"""The simulated data looks like a real organization's: every field of every catalog type holds
a value of its catalog type (literal sets, RFC 3339 dates, numbers, decimal-string amounts), the
cast recurs, addresses come from documentation ranges, and the demo tells its incident."""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter

import pytest

from anthropic_compliance_input.schema import page_problems
from anthropic_compliance_input.simulator import ActivityFactory, activity_types
from anthropic_compliance_input.timeutil import parse_rfc3339

T0 = 1_795_000_000.0  # a Thursday, 2026-11-19 (UTC)
DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                                                "2001:db8::/32", "127.0.0.0/8")]


def mismatch(value: object, text: str) -> str | None:
    """Why `value` is not of catalog type `text` (as the API reference writes it), or None.
    Written apart from the simulator's own type reader, from the catalog's wording."""
    body = text.removeprefix("optional ").removesuffix("Deprecated")
    nullable = body.endswith(" or null")
    body = body.removesuffix(" or null")
    if value is None:
        return None if nullable else "null where the type has no null"
    if body.startswith('"'):
        allowed = re.findall(r'"([^"]*)"', body)
        return None if value in allowed else f"{value!r} is not one of {allowed}"
    if body == "string (RFC 3339)":
        return None if isinstance(value, str) and _is_date(value) else f"{value!r} is not RFC 3339"
    if body == "string":
        return None if isinstance(value, str) else f"{value!r} is not a string"
    if body == "number":
        return None if type(value) in (int, float) else f"{value!r} is not a number"
    if body == "boolean":
        return None if type(value) is bool else f"{value!r} is not a boolean"
    if body == "array of string":
        return None if isinstance(value, list) and all(isinstance(v, str) for v in value) else f"{value!r}"
    if body == "array of object":
        return None if isinstance(value, list) and all(isinstance(v, dict) for v in value) else f"{value!r}"
    if body.startswith("array of object or object"):
        ok = isinstance(value, dict) or (isinstance(value, list) and all(isinstance(v, dict) for v in value))
        return None if ok else f"{value!r} is neither objects nor an object"
    if body.startswith("object"):
        return None if isinstance(value, dict) else f"{value!r} is not an object"
    if body == "map[number]":
        ok = isinstance(value, dict) and all(type(v) in (int, float) for v in value.values())
        return None if ok else f"{value!r} is not a map of numbers"
    return f"unknown catalog type {text!r}"


def _is_date(text: str) -> bool:
    try:
        parse_rfc3339(text)
        return True
    except ValueError:
        return False


def dated(name: str) -> bool:
    return name.endswith("_at") or name in ("from_date", "to_date")


def test_every_type_twenty_times_every_field_of_its_catalog_type():
    factory = ActivityFactory(seed=11)
    problems: list[str] = []
    checked = Counter()
    for kind, spec in activity_types().items():
        for i in range(20):
            record = factory.make(T0 + i * 3600, kind)
            for name, text in spec["fields"].items():
                if name not in record:
                    if not text.startswith("optional "):
                        problems.append(f"{kind}.{name}: missing, but not optional")
                    continue
                value = record[name]
                why = mismatch(value, text)
                if why is None and dated(name) and isinstance(value, str) and not _is_date(value):
                    why = f"{value!r}: a date field that is not RFC 3339"
                if why is None and name.endswith("_usd") and isinstance(value, str) and \
                        not re.fullmatch(r"\d+\.\d\d", value):
                    why = f"{value!r}: an amount that is not a decimal string"
                if why:
                    problems.append(f"{kind}.{name}: {why}")
                checked[text.startswith('"') or text.startswith('optional "')] += 1
    assert problems == [], "\n".join(problems[:40])
    assert checked[True] > 500 and sum(checked.values()) > 10_000  # literal sets and everything else


def test_the_cast_recurs_and_addresses_come_from_documentation_ranges():
    factory = ActivityFactory(seed=5)
    records = [factory.make(T0 + i * 97) for i in range(2000)]
    emails = Counter(r["actor"].get("email_address") for r in records if r["actor"]["type"] == "user_actor")
    assert len(emails) <= 12 and emails.most_common(1)[0][1] > 50  # a small cast, each seen often
    assert all(e.endswith(("@northwind.example", "@northwind-labs.example")) for e in emails)
    for r in records:
        ip = r["actor"].get("ip_address")
        if ip:
            assert any(ipaddress.ip_address(ip) in net for net in DOC_NETS), ip
    kinds = Counter(r["type"] for r in records)
    chat_and_project = sum(n for k, n in kinds.items() if k.startswith(("claude_chat", "claude_project", "claude_file")))
    assert chat_and_project > 0.6 * len(records)  # mostly chat and project work
    assert kinds["sso_login_succeeded"] > 10 and len(kinds) > 100  # logins, and a long tail of everything else


def test_logins_open_a_persons_working_day():
    factory = ActivityFactory(seed=2)
    records = [factory.make(T0 + i * 60) for i in range(3000)]  # two days, one a minute
    first_of_day: dict[tuple[str, str], str] = {}
    for r in records:
        if r["actor"]["type"] == "user_actor" and r["type"] != "compliance_api_accessed":
            person = next(p for p in factory.people if p["id"] == r["actor"]["user_id"])
            local = parse_rfc3339(r["created_at"]).timestamp() + person["utc_offset"] * 3600
            day = (person["id"], str(int(local // 86400)))
            first_of_day.setdefault(day, r["type"])
    starts = Counter(first_of_day.values())
    assert starts["sso_login_succeeded"] > 0.6 * sum(starts.values()), starts


def test_compliance_api_accessed_describes_a_real_request_of_this_collector():
    factory = ActivityFactory(seed=3)
    for i in range(50):
        r = factory.make(T0 + i, "compliance_api_accessed")
        assert r["request_method"] == "GET" and r["status_code"] in (200, 401, 429)
        assert r["url"].startswith("https://api.anthropic.com/v1/compliance/activities?")
        assert r["request_id"].startswith("req_")


STORY = ["sso_login_succeeded", "org_sso_toggled", "admin_api_key_created", "org_ip_restriction_deleted",
         "claude_artifact_sharing_updated", "mcp_server_created", "claude_chat_access_failed",
         "primary_owner_transferred"]


def incident_steps(lines: list[dict]) -> tuple[list[dict], str]:
    intruder_ip = "198.51.100.77"
    steps = [r for r in lines if r["actor"].get("ip_address") == intruder_ip]
    return steps, intruder_ip


def test_the_demo_tells_its_incident_in_order_and_passes_the_schema(plugin):
    result = plugin.run("demo")
    assert result.rc == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert 180 <= len(lines) <= 240  # readable in a terminal
    assert page_problems(lines) == {}  # the Anthropic.Activity schema
    for r in lines:
        parse_rfc3339(r["created_at"])
        for name, value in r.items():
            if dated(name) and isinstance(value, str):
                parse_rfc3339(value)
    steps, ip = incident_steps(lines)
    assert ip not in {r["actor"].get("ip_address") for r in lines if r not in steps}  # an unfamiliar address
    order = [k for i, k in enumerate(r["type"] for r in steps) if i == 0 or steps[i - 1]["type"] != k]
    assert order == STORY
    assert steps[1]["enabled"] is False and steps[4]["new_mode"] == "public"
    failed = [parse_rfc3339(r["created_at"]).timestamp() for r in steps if r["type"] == "claude_chat_access_failed"]
    assert len(failed) >= 50 and max(failed) - min(failed) <= 600
    owner = steps[-1]
    assert owner["new_owner_id"] == steps[0]["actor"]["user_id"] != owner["previous_owner_id"]
    assert all(r["actor"]["user_id"] == steps[0]["actor"]["user_id"] for r in steps)


def test_demo_seed_and_count(plugin):
    first, again = plugin.run("demo"), plugin.run("demo")
    other = plugin.run("demo", "--seed", "42", "--count", "500")
    def story(result) -> list[tuple]:  # all but the demo's own requests, whose ids and times are its own
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        return [(r["id"], r["type"], r["created_at"][11:], r["actor"].get("user_id")) for r in lines
                if r["actor"].get("ip_address") != "127.0.0.1"]

    ids = lambda result: [json.loads(line)["actor"].get("user_id") for line in result.stdout.splitlines()]  # noqa: E731
    assert first.rc == again.rc == other.rc == 0
    assert story(first) == story(again)  # deterministic: the same records, at the same time of day
    assert set(ids(other)) - {None} != set(ids(first)) - {None}  # another seed: another organization
    lines = other.stdout.splitlines()
    assert len(lines) >= 500 and len(incident_steps([json.loads(x) for x in lines])[0]) >= 60
    stamps = [json.loads(x)["created_at"] for x in lines]  # the RFC 3339 forms shippers must read
    assert any(re.fullmatch(r"[\d-]+T[\d:]+Z", t) for t in stamps)  # whole seconds
    assert any(re.fullmatch(r"[\d-]+T[\d:]+\.\d{9}Z", t) for t in stamps)  # nanoseconds
    assert any(re.fullmatch(r"[\d-]+T[\d:.]+[+-]\d\d:\d\d", t) for t in stamps)  # a numeric offset
    bare = plugin.run("demo", "--count", "40", "--no-incident")
    assert bare.rc == 0 and 40 <= len(bare.stdout.splitlines()) < 50
    assert "198.51.100.77" not in bare.stdout.decode()


@pytest.mark.parametrize("bad", ["-1", "x", "99999999"])
def test_demo_refuses_a_bad_count_or_seed(plugin, bad):
    for option in ("--count", "--seed"):
        result = plugin.run("demo", option, bad)
        if option == "--seed" and bad == "99999999":
            continue  # any non-negative seed is fine
        assert result.rc == 64 and "Traceback" not in result.stderr, (option, bad, result.stderr)
