"""Output formats: ECS as Elastic's `anthropic` integration maps this feed, and OCSF 1.5.0.

- ECS: for every record of the integration's own pipeline test input, the document equals the
  pipeline's expected output on every field (tests/data/elastic-anthropic, copied from
  elastic/integrations with its source and license), but for what needs an ingest-time database
  (GeoIP and ASN of source.ip, the user-agent parse), which the receiving side adds.
- OCSF: every catalog type in every actor variant the catalog allows validates against the
  pinned 1.5.0 schema (PyPI ocsf-json-schema bundles it; jsonschema checks it).
- The format is applied only when a line is written: validation, dedupe, the dead-letter file
  and the cursor work on the raw record, and keep_original adds it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import jsonschema
import pytest
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from anthropic_compliance_input.ecs import to_ecs
from anthropic_compliance_input.ocsf import classify, to_ocsf
from anthropic_compliance_input.simulator import ActivityFactory, activity_types
from helpers import Plugin

ELASTIC = Path(__file__).resolve().parent / "data" / "elastic-anthropic"
OCSF_CLASSES = {3001: "account_change", 3002: "authentication", 3004: "entity_management", 3005: "user_access",
                3006: "group_management", 6003: "api_activity", 6006: "file_hosting"}
# ECS 9.3 fields this mapping writes (the integration's fields/ecs.yml); the rest is anthropic.audit.*
ECS_FIELDS = {
    "@timestamp", "ecs.version", "tags", "error.message", "event.action", "event.category", "event.id", "event.kind",
    "event.original", "event.outcome", "event.reason", "event.type", "file.name", "http.request.id",
    "http.request.method", "http.response.status_code", "organization.id", "organization.name", "related.hosts",
    "related.ip", "related.user", "source.ip", "url.domain", "url.extension", "url.fragment", "url.original",
    "url.password", "url.path", "url.port", "url.query", "url.scheme", "url.user_info", "url.username",
    "user.email", "user.id", "user.name", "user.target.email", "user.target.id", "user.target.roles",
    "user_agent.original",
}


def leaves(doc: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not path.startswith("anthropic."):
            out.update(leaves(value, path + "."))
        else:
            out[path] = value
    return out


def every_variant(seed: int = 3):
    """Each catalog type in each actor variant the catalog allows for it."""
    factory = ActivityFactory(seed=seed)
    for kind, spec in activity_types().items():
        for actor in spec["actor_types"]:
            record = factory.make(1_795_000_000.0, kind)
            record["actor"] = factory.actor(actor, None, kind)
            yield record


def test_ecs_equals_elastics_pipeline_on_every_field_of_its_test_input():
    records = [json.loads(line) for line in (ELASTIC / "test-anthropic-audit-generated.log").read_text().splitlines()]
    expected = defaultdict(list)
    for line in (ELASTIC / "expected.jsonl").read_text().splitlines():
        doc = json.loads(line)
        expected[(doc["event"]["id"], doc["event"]["action"])].append(doc)
    assert len(records) == sum(map(len, expected.values())) == 306
    seen: Counter = Counter()
    differing = []
    for line, record in zip((ELASTIC / "test-anthropic-audit-generated.log").read_text().splitlines(), records):
        key = (record["id"], record["type"])
        want = expected[key][seen[key]]  # (two records share an id: matched in order)
        seen[key] += 1
        got = to_ecs(record, line.encode())
        assert got["event"].pop("original") == line  # keep_original: the record as received
        got_fields, want_fields = leaves(got), leaves(want)
        differing += [(record["type"], field, got_fields.get(field), want_fields.get(field))
                      for field in sorted(got_fields.keys() | want_fields.keys())
                      if got_fields.get(field, "<absent>") != want_fields.get(field, "<absent>")]
    assert differing == [], differing[:20]


def test_every_type_and_actor_variant_makes_valid_ecs_fields():
    unknown = Counter()
    for record in every_variant():
        doc = to_ecs(record)
        assert doc["event"]["action"] == record["type"] and doc["event"]["id"] == record["id"]
        for field in leaves(doc):
            if field not in ECS_FIELDS and field != "anthropic.audit":
                unknown[field] += 1
    assert unknown == Counter()


@pytest.fixture(scope="module")
def ocsf_validators() -> dict[int, jsonschema.Draft202012Validator]:
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version="1.5.0"))
    return {uid: jsonschema.Draft202012Validator(schema.get_class_schema(name)) for uid, name in OCSF_CLASSES.items()}


def test_every_type_and_actor_variant_is_valid_ocsf_1_5_0(ocsf_validators):
    errors, classes, count = [], Counter(), 0
    for record in every_variant():
        event = to_ocsf(record, b"{}")
        count += 1
        classes[event["class_uid"]] += 1
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert event["metadata"]["uid"] == record["id"] and event["metadata"]["event_code"] == record["type"]
        errors += [(record["type"], record["actor"]["type"], e.json_path, e.message[:100])
                   for e in ocsf_validators[event["class_uid"]].iter_errors(event)]
    assert errors == [], errors[:20]
    assert count > 3000 and set(classes) == set(OCSF_CLASSES), classes


@pytest.mark.parametrize("kind, cls, activity", [
    ("sso_login_succeeded", 3002, 1), ("user_logged_out", 3002, 2), ("account_deleted", 3001, 6),
    ("role_assignment_granted", 3005, 1), ("role_assignment_revoked", 3005, 2), ("group_member_added", 3006, 3),
    ("org_sso_toggled", 3004, 3), ("mcp_server_created", 3004, 1), ("compliance_api_accessed", 6003, 2),
    ("admin_api_key_created", 6003, 1), ("claude_file_uploaded", 6006, 1), ("org_ip_restriction_deleted", 3004, 4),
    ("brand_new_thing_frobnicated", 6003, 99)])
def test_the_class_table(kind, cls, activity):
    assert classify(kind) == (cls, activity)


def values(node: object) -> list[object]:
    if isinstance(node, dict):
        return [v for x in node.values() for v in values(x)]
    if isinstance(node, list):
        return [node] + [v for x in node for v in values(x)]
    return [node]


def test_ocsf_loses_no_field():
    """Every field of every record is in the event: mapped (its value is there) or under unmapped,
    also when fields the mapping reads come together or with unexpected types."""
    base = {"id": "activity_01x", "created_at": "2026-05-01T10:00:00Z", "actor": {"type": "user_actor"}}
    odd = [dict(base, type="role_assignment_granted", role="R1", role_id="RID", current_role="CR"),
           dict(base, type="claude_file_uploaded", filename="f", claude_file_id="C", file_id="F",
                claude_project_document_id="D"),
           dict(base, type="group_member_added", group_id=["G"], group_name=12345),
           dict(base, type="claude_file_uploaded", filename=["name"])]
    for record in [*every_variant(seed=5), *odd]:
        event = to_ocsf(record)
        found = values(event)
        for field, value in record.items():
            if value is None or field in ("id", "created_at", "type", "organization_id"):
                continue
            if field == "actor" and isinstance(value, dict):  # mapped field by field; the rest under unmapped
                rest = event.get("unmapped", {}).get("actor", {})
                for key, part in value.items():
                    assert part is None or part in found or key in rest, (record["type"], "actor", key, part)
                continue
            assert field in event.get("unmapped", {}) or value in found, (record["type"], field, value)


def test_nothing_is_lost_in_either_format():
    """What a format has no place for is kept: ECS under anthropic.audit.*, OCSF under unmapped."""
    factory = ActivityFactory(seed=9)
    record = factory.make(1_795_000_000.5, "claude_chat_created", brand_new_field={"nested": [1, 2]})
    assert to_ecs(record)["anthropic"]["audit"]["metadata"]["brand_new_field"] == {"nested": [1, 2]}
    assert to_ocsf(record)["unmapped"]["brand_new_field"] == {"nested": [1, 2]}
    assert to_ocsf(record)["time"] == 1_795_000_000_500 or record["created_at"][-1] != "Z"


@pytest.mark.parametrize("fmt", ["ecs", "ocsf"])
def test_demo_prints_valid_documents(plugin: Plugin, fmt, ocsf_validators):
    result = plugin.run("demo", "--format", fmt)
    assert result.rc == 0, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(docs) > 150
    for doc in docs:
        if fmt == "ocsf":
            assert list(ocsf_validators[doc["class_uid"]].iter_errors(doc)) == []
        else:
            assert doc["ecs"]["version"] == "9.3.0" and doc["@timestamp"].endswith("Z")
            assert all(f in ECS_FIELDS or f == "anthropic.audit" for f in leaves(doc))


def test_run_format_applies_when_writing_and_the_cursor_works_on_the_raw_record(plugin: Plugin, model, now):
    records = model.generate(50, now - 3600, now - 120)
    bad = model.add({**model.factory.make(now - 1800, "claude_chat_created"), "actor": "not an object"})
    plugin.configure(output={"format": "ocsf", "keep_original": True})
    first = plugin.run("run", "--format", "ecs")  # the command line wins over [output] format
    assert first.rc == 0, first.stderr
    docs = [json.loads(line) for line in first.stdout.splitlines()]
    assert sorted(d["event"]["id"] for d in docs) == sorted(r["id"] for r in records)
    assert all(json.loads(d["event"]["original"])["id"] == d["event"]["id"] for d in docs)  # keep_original
    rejected = [json.loads(line) for line in plugin.rejected_path.read_text().splitlines()]
    assert [r["activity"]["id"] for r in rejected] == [bad["id"]]  # dead letters stay raw
    new = model.generate(5, now - 100, now - 90)
    again = plugin.run("run")
    ocsf = [json.loads(line) for line in again.stdout.splitlines()]
    assert sorted(e["metadata"]["uid"] for e in ocsf) == sorted(r["id"] for r in new)  # the cursor held
    assert all(json.loads(e["raw_data"])["id"] == e["metadata"]["uid"] for e in ocsf)
