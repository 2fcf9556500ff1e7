"""An activity as an OCSF 1.5.0 event: the class and activity from the mapping table in
data/ocsf.json (families of types, then the verb a type ends in), the required attributes from
the record, and everything OCSF has no attribute for under `unmapped`, so nothing is lost.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from .ecs import outcome
from .datafiles import load
from .timeutil import epoch_ns

ENVELOPE = ("id", "created_at", "type", "organization_id")  # mapped for every class
TARGET_USER = ("user_id", "deleted_user_id", "principal_id", "new_owner_id", "target_id")
TARGET_EMAIL = ("user_email", "deleted_user_email", "invited_email", "invitee_email")


@lru_cache(maxsize=1)
def _model() -> dict[str, Any]:
    return load("ocsf.json")


@lru_cache(maxsize=1024)
def classify(kind: str) -> tuple[int, int]:
    """(class_uid, activity_id) for an activity type, from the table alone."""
    model = _model()
    verb = kind.rsplit("_", 1)[-1]
    for family in model["families"]:
        if kind in family.get("types", ()) or kind.startswith(tuple(family.get("prefixes", ()))):
            cls = family["class"]
            activity = family.get("activity", model["classes"][str(cls)]["verbs"].get(verb, 99))
            return cls, activity
    cls = model["fallback"]
    return cls, model["classes"][str(cls)]["verbs"].get(verb, 99)


def to_ocsf(record: dict[str, Any], keep_original: bytes | None = None) -> dict[str, Any]:
    model = _model()
    kind = record.get("type") if isinstance(record.get("type"), str) else "unknown"
    cls, activity = classify(kind)
    info = model["classes"][str(cls)]
    activity_name = info["activities"].get(str(activity), "Other")
    seconds, nanos = epoch_ns(record["created_at"])
    status_id, status = model["status"][outcome(kind, record)]
    used = set(ENVELOPE)
    metadata: dict[str, Any] = {"version": model["version"], "product": dict(model["product"]),
                                "uid": record.get("id"), "event_code": kind, "original_time": record["created_at"]}
    if record.get("organization_id"):
        metadata["tenant_uid"] = record["organization_id"]
    event: dict[str, Any] = {
        "activity_id": activity, "activity_name": activity_name,
        "category_uid": cls // 1000, "category_name": model["categories"][str(cls // 1000)],
        "class_uid": cls, "class_name": info["name"],
        "type_uid": cls * 100 + activity, "type_name": f"{info['name']}: {activity_name}",
        "severity_id": 1, "severity": "Informational",
        "status_id": status_id, "status": status,
        "time": seconds * 1000 + nanos // 1_000_000,
        "metadata": metadata,
    }
    actor = record.get("actor") if isinstance(record.get("actor"), dict) else {}
    actor_used: set[str] = set()
    user = _actor_user(actor, actor_used)
    event["actor"] = {"user": user} if user else {"app_name": "Anthropic"}
    if _is_ip(actor.get("ip_address")):
        event["src_endpoint"] = {"ip": actor["ip_address"]}
        actor_used.add("ip_address")
    elif cls in (6003, 6006):
        event["src_endpoint"] = {"name": "unknown"}  # required in these classes; the API named none
    if isinstance(actor.get("user_agent"), str) and cls != 6006:  # (File Hosting has no http_request)
        event["http_request"] = {"user_agent": actor["user_agent"]}
        actor_used.add("user_agent")

    if cls == 3002:
        event["user"] = user or {"type_id": 0, "name": "unknown"}
        event["service"] = {"name": "Claude"}  # what was signed in to (OCSF wants a service or a dst_endpoint)
    elif cls in (3001, 3005):
        event["user"] = _target_user(record, used) or user or {"type_id": 0, "name": "unknown"}
    if cls == 3005:
        source = next((k for k in ("role", "current_role", "role_id") if isinstance(record.get(k), str)), None)
        event["privileges"] = [record[source] if source else
                               "primary_owner" if kind == "primary_owner_transferred" else kind]
        if source:
            used.add(source)
    elif cls == 3006:
        group = {}
        for field, attr in (("group_id", "uid"), ("group_name", "name")):
            if isinstance(record.get(field), str):
                group[attr] = record[field]
                used.add(field)
        event["group"] = group or {"name": "unknown"}
    elif cls == 3004:
        event["entity"] = _entity(kind, record, used)
    elif cls == 6003:
        _api(kind, record, event, used)
    elif cls == 6006:
        file: dict[str, Any] = {"type_id": 1, "type": "Regular File"}
        uid_field = next((k for k in ("claude_file_id", "claude_project_document_id", "file_id")
                          if isinstance(record.get(k), str)), None)
        if uid_field:
            file["uid"] = record[uid_field]
            used.add(uid_field)
        if isinstance(record.get("filename"), str):
            file["name"] = record["filename"]
            used.add("filename")
        else:
            file["name"] = file.get("uid", kind)  # OCSF requires a name: the id, or the activity
        event["file"] = file

    unmapped = {k: v for k, v in record.items() if k not in used and v is not None}
    if "actor" in unmapped and isinstance(unmapped["actor"], dict):  # only what actor.user etc. do not carry
        rest = {k: v for k, v in unmapped["actor"].items() if k not in actor_used and v is not None}
        if rest:
            unmapped["actor"] = rest
        else:
            del unmapped["actor"]
    if unmapped:
        event["unmapped"] = unmapped
    if keep_original is not None:
        event["raw_data"] = keep_original.decode("utf-8", "replace").rstrip("\n")
    return event


def _actor_user(actor: dict[str, Any], used: set[str]) -> dict[str, Any]:
    """actor.user; `used` gets the actor fields it carries (the rest stays under unmapped)."""
    kind = actor.get("type")
    type_id, type_name = _model()["user_types"].get(kind, (99, str(kind or "Unknown")))
    user: dict[str, Any] = {"type_id": type_id, "type": type_name}
    for field in ("user_id", "api_key_id", "admin_api_key_id", "service_account_id", "subject", "external_client_id"):
        if isinstance(actor.get(field), str):
            user["uid"] = actor[field]
            used.add(field)
            break
    for field in ("email_address", "unauthenticated_email_address"):
        if isinstance(actor.get(field), str) and actor[field]:
            user["email_addr"] = user["name"] = actor[field]
            used.add(field)
            break
    else:
        if isinstance(actor.get("service"), str):
            user["name"] = actor["service"]
            used.add("service")
    user.setdefault("name", user.get("uid") or type_name)  # OCSF wants a name or a uid: at least the kind
    return user if kind else {}


def _target_user(record: dict[str, Any], used: set[str]) -> dict[str, Any]:
    user: dict[str, Any] = {}
    for field in TARGET_USER:
        if isinstance(record.get(field), str):
            user["uid"] = record[field]
            used.add(field)
            break
    for field in TARGET_EMAIL:
        if isinstance(record.get(field), str):
            user["email_addr"] = user["name"] = record[field]
            used.add(field)
            break
    if user:
        user["type_id"], user["type"] = 1, "User"
    return user


def _entity(kind: str, record: dict[str, Any], used: set[str]) -> dict[str, Any]:
    """The object a setting or object change is about: its noun (the type without its verb), the
    id field that names it, and a name if the record gives one."""
    noun = kind.rsplit("_", 1)[0] if "_" in kind else kind
    entity: dict[str, Any] = {"type": noun}
    ids = [k for k, v in record.items() if k.endswith("_id") and k not in ENVELOPE and isinstance(v, str)]
    preferred = [k for k in ids if noun.startswith(k[:-3])] or ids
    if preferred:
        entity["uid"] = record[preferred[0]]
        used.add(preferred[0])
    for field in ("name", "title", "display_name", f"{noun}_name", "mcp_server_name", "role_name", "skill_name",
                  "plugin_name", "key_name", "token_name"):
        if isinstance(record.get(field), str):
            entity["name"] = record[field]
            used.add(field)
            break
    if "uid" not in entity and "name" not in entity:  # OCSF wants one of them
        entity["name"] = noun
    return entity


def _api(kind: str, record: dict[str, Any], event: dict[str, Any], used: set[str]) -> None:
    api: dict[str, Any] = {"operation": kind, "service": {"name": "Anthropic Compliance API"}}
    if isinstance(record.get("request_id"), str):
        api["request"] = {"uid": record["request_id"]}
        used.add("request_id")
    if kind == "compliance_api_accessed":
        method, url = record.get("request_method"), record.get("url")
        if isinstance(method, str):
            api["operation"] = method
            event.setdefault("http_request", {})["http_method"] = method
            used.add("request_method")
        if isinstance(url, str):
            event.setdefault("http_request", {})["url"] = {"url_string": url}
            used.add("url")
        if isinstance(record.get("status_code"), int) and not isinstance(record.get("status_code"), bool):
            api["response"] = {"code": record["status_code"]}
            event["http_response"] = {"code": record["status_code"]}
            used.add("status_code")
    else:
        key = next((record[k] for k in ("api_key_id", "admin_api_key_id", "service_key_id") if isinstance(record.get(k), str)), None)
        if key:
            api["request"] = api.get("request") or {"uid": key}
    event["api"] = api


def _is_ip(value: Any) -> bool:
    return isinstance(value, str) and _parses_as_ip(value)


@lru_cache(maxsize=4096)  # a feed's addresses repeat: parse each once
def _parses_as_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False
