"""Anthropic.Activity checks and the exact re-encoding of records."""

from __future__ import annotations

import json

import pytest

from anthropic_compliance_input.schema import page_problems, problem
from anthropic_compliance_input.sinks import encode

GOOD = {"id": "activity_01", "created_at": "2026-05-22T11:05:00.123456Z", "actor": {"type": "user_actor"},
        "type": "claude_chat_created"}


def test_valid_variants():
    for created in ("2026-05-22T11:05:00Z", "2026-05-22T11:05:00.1Z", "2026-05-22T11:05:00.123456789Z",
                    "2026-05-22T11:05:00+02:00", "2026-05-22t11:05:00z"):
        assert problem({**GOOD, "created_at": created}) is None, created
    assert problem({**GOOD, "organization_id": None, "actor": {"type": "x", "new": [1]}, "extra": {}}) is None


def test_each_failure_is_named():
    cases = {
        "id: Field required": {k: v for k, v in GOOD.items() if k != "id"},
        "created_at: not an RFC 3339 timestamp": {**GOOD, "created_at": "2026-05-22"},
        "created_at: Input should be a valid string": {**GOOD, "created_at": 1747911900},
        "actor.type: Field required": {**GOOD, "actor": {}},
        "actor.email_address: Input should be a valid string": {**GOOD, "actor": {"type": "u", "email_address": 5}},
        "organization_id: Input should be a valid string": {**GOOD, "organization_id": 7},
        "record: Input should be a valid dictionary": ["not", "an", "object"],
    }
    for needle, record in cases.items():
        assert needle in (problem(record) or ""), (needle, problem(record))
    assert "created_at" in problem({**GOOD, "created_at": "2026-02-30T00:00:00Z"})  # not a real date


def test_a_page_is_checked_in_one_pass_with_reasons_by_index():
    page = [GOOD, {**GOOD, "type": None}, GOOD, {"id": "x"}]
    problems = page_problems(page)
    assert set(problems) == {1, 3} and "type" in problems[1] and "created_at" in problems[3]


def test_encoding_is_exact_including_what_orjson_cannot_write():
    record = {**GOOD, "z": 1, "a": "ünï ✓", "big": 2**70, "f": 0.1, "n": None}
    line = encode(record)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert json.loads(line) == record and list(json.loads(line)) == list(record)
    surrogate = json.loads('{"id": "a", "s": "\\ud800"}')
    assert json.loads(encode(surrogate)) == surrogate
    assert encode({"a": "ü"}) == '{"a":"ü"}\n'.encode()


def test_rfc3339_parsing_is_exact_on_every_supported_python():
    from anthropic_compliance_input.timeutil import epoch, format_rfc3339, parse_duration, parse_rfc3339

    base = parse_rfc3339("2026-05-22T11:05:00Z")
    assert (parse_rfc3339("2026-05-22T11:05:00.1Z") - base).total_seconds() == 0.1
    assert (parse_rfc3339("2026-05-22T11:05:00.123456789Z") - base).total_seconds() == 0.123456
    assert parse_rfc3339("2026-05-22T13:05:00+02:00") == base == parse_rfc3339("2026-05-22t11:05:00z")
    assert format_rfc3339(epoch("2026-05-22T11:05:00.123456Z")) == "2026-05-22T11:05:00.123456Z"
    assert format_rfc3339(base) == "2026-05-22T11:05:00Z"
    for bad in ("2026-05-22", "2026-05-22T11:05:00", "2026-02-30T00:00:00Z", "yesterday"):
        with pytest.raises(ValueError):
            parse_rfc3339(bad)
    assert parse_duration("1h30m").total_seconds() == 5400 and parse_duration("7d").days == 7
