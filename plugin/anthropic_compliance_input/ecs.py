"""The ECS document Elastic's `anthropic` integration makes of an activity, made here instead.

It follows the integration's ingest pipeline for the audit data stream step by step (the pinned
commits are in data/ecs.json): the same renames, the same target-user cascade, the actor pulled
apart, the same event categorisation table, `related.*`, and the same clean-up of nulls and empty
values. What needs an ingest-time database is left to the receiving side: GeoIP and ASN of
`source.ip`, and the user-agent parse of `user_agent.original`. Whatever ECS has no place for
lands under `anthropic.audit.*`, as the integration puts it, so nothing is lost.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from .datafiles import load
from .timeutil import parse_rfc3339

ROLE_TYPES = ("role_assignment_granted", "role_assignment_revoked")


@lru_cache(maxsize=1)
def _model() -> dict[str, Any]:
    model = load("ecs.json")
    # field -> (its place in the pipeline, target, how): a record visits only the fields it has
    model["by_field"] = {field: (i, target, how, target.removeprefix("anthropic.audit.")
                                 if how == "rename" and target.startswith("anthropic.audit.") else None)
                         for i, (field, target, how) in enumerate(model["renames"])}
    # the common case, moved in one pass: anthropic.audit.<field> for a field no earlier step reads
    cascade = set(model["target_email"]) | {field for field, _ in model["target_id"]}
    model["plain"] = {field: key for field, (_, _, _, key) in model["by_field"].items()
                      if key == field and field not in cascade}
    return model


def to_ecs(record: dict[str, Any], keep_original: bytes | None = None) -> dict[str, Any]:
    """`keep_original`: the record as received, for `event.original` (and the integration's
    `preserve_original_event` tag)."""
    model = _model()
    plain = model["plain"]
    audit: dict[str, Any] = {}
    json: dict[str, Any] = {}  # what the steps below take from; what is left of it is metadata
    for field, value in record.items():
        if field in plain:
            if value is not None:
                audit[field] = value
        else:
            json[field] = value
    if type(json.get("actor")) is dict:
        json["actor"] = dict(json["actor"])  # (nested values are shared, never changed: _clean copies)
    doc: dict[str, Any] = {"ecs": {"version": model["ecs_version"]}}
    event: dict[str, Any] = {}
    doc["event"] = event
    if keep_original is not None:
        event["original"] = keep_original.decode("utf-8", "replace").rstrip("\n")
    for field, name in (("id", "id"), ("type", "action")):
        value = json.pop(field, None)
        if value is not None and value != "":  # (an empty one goes in the clean-up there too)
            event[name] = value
    created = json.pop("created_at", None)
    if created is not None:
        doc["@timestamp"] = _es_created(created)
    for field, target in model["top"]:
        if json.get(field) is not None:
            _set(doc, target, json.pop(field))

    # the user acted upon: the first of these that is present wins
    target: dict[str, Any] = {}
    for field in model["target_email"]:
        if json.get(field) is not None:
            target["email"] = json.pop(field)
            break
    for field, only_if in model["target_id"]:
        if json.get(field) is not None and (only_if is None or record.get(only_if[0]) == only_if[1]):
            target["id"] = json.pop(field)
            break
    target = _clean(target) if target else target  # ("" still stops the cascade, then goes, as there)
    if target:
        doc["user"] = {"target": target}

    # the actor, under anthropic.audit.actor, with what ECS has a place for pulled out of it
    actor = json.pop("actor", None)
    if actor is not None:
        audit["actor"] = actor
        if type(actor) is dict:
            kind = actor.get("type")
            value = actor.pop("ip_address", None)
            if value is not None:
                _set(doc, "source.ip", value)
            value = actor.pop("user_agent", None)
            if value is not None:
                _set(doc, "user_agent.original", value)
            if kind in ("user_actor", "anthropic_actor") and actor.get("email_address") is not None:
                _set(doc, "user.email", actor.pop("email_address"))
            if kind == "user_actor" and actor.get("user_id") is not None:
                _set(doc, "user.id", actor.pop("user_id"))
            if actor.get("unauthenticated_email_address") is not None:
                _set(doc, "user.email", actor.pop("unauthenticated_email_address"))
    doc["anthropic"] = {"audit": audit}

    action = event.get("action")
    by_field = model["by_field"]
    # in the record's order: every rename has its own target, except the two organization names
    # (the pipeline's first, org_name, wins), so the pipeline's order changes nothing else
    for field in [f for f in json if f in by_field]:
        _, target, how, key = by_field[field]
        if json[field] is None:
            continue
        if key is not None:  # most of them: anthropic.audit.<field> (cleaned with audit below)
            audit[key] = json.pop(field)
        elif how == "date":
            _set(doc, target, _es_date(json[field]))
            if field != "to_date":  # the integration leaves to_date in place: it reaches metadata too
                del json[field]
        elif how == "string":
            _set(doc, target, _mustache(json.pop(field)))
        elif how == "role":
            if action in ROLE_TYPES:
                doc.setdefault("user", {}).setdefault("target", {}).setdefault("roles", []).append(
                    _mustache(json.pop(field)))
            else:
                _move(json, field, doc, target)
        elif how == "if_absent":
            if (doc.get("organization") or {}).get("name") is None and (
                    field == "org_name" or json.get("org_name") is None):  # (only organization.name is taken so)
                _move(json, field, doc, target)
        else:
            _move(json, field, doc, target)
    if json:
        audit["metadata"] = json  # anything new the integration does not know yet

    user = doc.get("user") or {}
    email = user.get("email")
    if isinstance(email, str) and "@" in email and email.index("@") > 0:
        user["name"] = email[:email.index("@")]
    url = (doc.get("url") or {}).get("original")
    if isinstance(url, str):
        _uri_parts(doc, url)

    if action is not None:
        _categorise(doc, event, action, audit)
    _related(doc, audit)
    # the integration's clean-up; what this module set itself is never empty (see _set)
    doc["anthropic"]["audit"] = audit = _clean(audit)
    if not audit:
        del doc["anthropic"]
    if not event.get("category", True):
        del event["category"]
    if keep_original is not None:
        doc["tags"] = ["preserve_original_event"]
    return doc


def outcome(action: str, record: dict[str, Any]) -> str:
    """success, failure or unknown: Elastic's categorisation table, the HTTP status of a
    compliance_api_accessed, the decision of an org_join_proposal_decided (OCSF's status_id
    follows it too)."""
    rule = _model()["categories"].get(action)
    result = rule.get("outcome", "unknown") if rule else "unknown"
    status = record.get("status_code")
    if action == "compliance_api_accessed" and isinstance(status, (int, float)) and not isinstance(status, bool):
        result = ("success" if 200 <= status < 300 else "failure" if 400 <= status < 500
                  else "unknown" if status >= 500 else result)
    if action == "org_join_proposal_decided":
        result = "success" if record.get("approved") is True else "failure"
    return result


def _categorise(doc: dict[str, Any], event: dict[str, Any], action: Any, audit: dict[str, Any]) -> None:
    event["kind"] = "event"
    rule = _model()["categories"].get(action) if isinstance(action, str) else None
    if rule is None:
        event["category"], event["type"], event["outcome"] = [], ["info"], "unknown"
    else:
        event["category"], event["type"] = rule["category"], rule["type"]  # (shared, never changed)
        if "outcome" in rule:
            event["outcome"] = rule["outcome"]
    status = ((doc.get("http") or {}).get("response") or {}).get("status_code")
    if action == "compliance_api_accessed" and isinstance(status, (int, float)) and not isinstance(status, bool):
        event["outcome"] = ("success" if 200 <= status < 300 else "failure" if 400 <= status < 500
                            else "unknown" if status >= 500 else event.get("outcome"))
    if action == "org_join_proposal_decided":
        event["outcome"] = "success" if audit.get("approved") is True else "failure"


def _related(doc: dict[str, Any], audit: dict[str, Any]) -> None:
    """related.ip, related.user, related.hosts: the integration's appends, in its order, each
    value once, as the text its `{{{template}}}` renders."""
    related: dict[str, list[str]] = {}
    ip = (doc.get("source") or {}).get("ip")
    if ip is not None and ip != "":
        related["ip"] = [_mustache(ip)]
    user = doc.get("user") or {}
    target = user.get("target") or {}
    users = [user.get("email"), user.get("id"), target.get("email"), target.get("id")]
    if audit.get("principal_type") == "user":
        users.append(audit.get("principal_id"))
    for many in ("member_ids", "alert_emails"):
        if type(audit.get(many)) is list:
            users.extend(audit[many])
    names: list[str] = []
    for value in users:
        if value is not None and value != "":
            text = value if type(value) is str else _mustache(value)
            if text not in names:
                names.append(text)
    if names:
        related["user"] = names
    host = (doc.get("url") or {}).get("domain")
    if host is not None and host != "":
        related["hosts"] = [_mustache(host)]
    if related:
        doc["related"] = related


def _uri_parts(doc: dict[str, Any], url: str) -> None:
    """Elasticsearch's uri_parts processor: scheme, domain, port, path, extension, query, fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return
    if not parts.scheme or not parts.netloc:
        return
    target = doc.setdefault("url", {})
    target["scheme"] = parts.scheme
    if parts.hostname:
        target["domain"] = parts.hostname
    if port is not None:
        target["port"] = port
    if parts.path:
        target["path"] = parts.path
        last = parts.path.rsplit("/", 1)[-1]
        if "." in last:
            target["extension"] = last.rsplit(".", 1)[1]
    if parts.query:
        target["query"] = parts.query
    if parts.fragment:
        target["fragment"] = parts.fragment
    if parts.username is not None:
        target["username"] = parts.username
        target["user_info"] = parts.netloc.rsplit("@", 1)[0]
        if parts.password is not None:
            target["password"] = parts.password


def _es_created(text: Any) -> Any:
    """_es_date for created_at, which the schema has checked: the API's own forms (Z, up to 9
    fraction digits) by slicing, which is what formatting the parsed instant gives."""
    if type(text) is str and len(text) >= 20 and text[-1] == "Z" and text[19] in ".Z":
        fraction = text[20:-1]
        if fraction.isdigit() or not fraction:
            return f"{text[:19]}.{(fraction + '000')[:3]}Z"
    return _es_date(text)


def _es_date(value: Any) -> Any:
    """The date processor's ISO8601 in, its default output out: milliseconds, UTC, 'Z'."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)  # C (3.11+); 3.10 and odd forms take the RFC 3339 parser
        if moment.tzinfo is None:
            raise ValueError
    except ValueError:
        try:
            moment = parse_rfc3339(value)
        except ValueError:
            return value
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _mustache(value: Any) -> str:
    """A value as an ingest `{{{template}}}` renders it (what `append` stores)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    """Put a value at a dotted path. What the integration's clean-up would drop (an empty string,
    an empty map or list, nulls inside) is dropped here, where it arrives."""
    if value == "" or value is None:
        return
    if type(value) is dict or type(value) is list:
        value = _clean(value)
        if not value:
            return
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _move(source: dict[str, Any], field: str, doc: dict[str, Any], path: str) -> None:
    """A rename with ignore_missing: a missing or null field stays where it is."""
    if source.get(field) is None:
        return
    _set(doc, path, source.pop(field))


def _clean(node: Any) -> Any:
    """The integration's last script: drop nulls, empty strings, empty maps and lists, deeply.
    A cleaned copy: the record's own nested values are shared with the document, not changed.
    (Two plain loops, not one generator over both: that costs 0.4 µs an activity here.)"""
    if type(node) is dict:
        out = {}
        for key, value in node.items():
            if type(value) is dict or type(value) is list:
                value = _clean(value)
                if not value:
                    continue
            elif value is None or value == "":
                continue
            out[key] = value
        return out
    if type(node) is list:
        kept = []
        for value in node:
            if type(value) is dict or type(value) is list:
                value = _clean(value)
                if not value:
                    continue
            elif value is None or value == "":
                continue
            kept.append(value)
        return kept
    return node
