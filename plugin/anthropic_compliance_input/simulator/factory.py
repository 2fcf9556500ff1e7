"""Realistic activities for the simulated feed.

Records are drawn from the real activity types, their allowed actor variants and flat fields
(data/activity_types.json), so the plugin meets the same shapes it meets in production rather
than a hand-written sample that drifts from the API. A seeded RNG keeps runs reproducible.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

from ..timeutil import format_rfc3339

# The data file belongs to the top-level package, not to this subpackage.
DATA_PACKAGE = "anthropic_compliance_input"
ALL_ACTORS = ("user_actor", "api_actor", "admin_api_key_actor", "unauthenticated_user_actor",
              "anthropic_actor", "system_actor", "scim_directory_sync_actor", "service_account_actor",
              "federated_identity_actor", "federated_actor", "attested_device_actor")
# Types the API reports without an organization (log-in flows, the audit trail of API access).
NO_ORG_TYPES = {"compliance_api_accessed", "user_logged_out", "sso_login_initiated",
                "sso_login_failed", "sso_login_succeeded", "magic_link_login_initiated",
                "magic_link_login_failed", "magic_link_login_succeeded"}
# Over-represented, as in a real organization's feed, so filters and dashboards see bulk.
COMMON = ("claude_chat_created", "claude_file_uploaded", "sso_login_succeeded",
          "claude_project_created", "claude_chat_viewed", "user_logged_out")
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@lru_cache(maxsize=1)
def activity_types() -> dict[str, dict[str, Any]]:
    """Every known type with its actor variants and fields; cached because the model checks
    `activity_types[]` filters against it on every request."""
    text = resources.files(DATA_PACKAGE).joinpath("data/activity_types.json").read_text("utf-8")
    types = json.loads(text)["types"]
    # Documented by the API but missing from the reference list; shaped like anthropic_access.
    types.setdefault("cmek_preserve", dict(types["anthropic_access"]))
    return {name: {"actor_types": (spec or {}).get("actor_types") or list(ALL_ACTORS),
                   "fields": (spec or {}).get("fields") or {}} for name, spec in types.items()}


def _tagged(rng: random.Random, prefix: str, n: int = 24) -> str:
    """An id in the API's style (prefix + base58), so id-shape checks in the plugin are exercised."""
    return prefix + "".join(rng.choice(B58) for _ in range(n))


class ActivityFactory:
    """Realistic activities: the real types, their allowed actor variants and flat fields."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.types = activity_types()
        self.names = sorted(self.types)  # sorted: the seed alone decides the sequence
        self.orgs = [(_tagged(rng, "org_"), str(uuid.UUID(int=rng.getrandbits(128), version=4)))
                     for _ in range(2)]
        first = ["dana", "li", "amara", "jonas", "priya", "sam", "yuki", "omar", "eva", "kofi"]
        last = ["ruiz", "chen", "okafor", "berg", "nair", "lee", "sato", "haddad", "novak", "mensah"]
        self.users = [(f"{f}.{l}@example.com", _tagged(rng, "user_")) for f, l in zip(first, last)]
        self.counter = itertools.count()

    def new_id(self) -> str:
        return "activity_01" + "".join(self.rng.choice(B58) for _ in range(22))

    def actor(self, kind: str) -> dict[str, Any]:
        """One actor of the given variant, with the fields that variant really carries."""
        rng = self.rng
        ip = f"203.0.113.{rng.randint(1, 254)}"
        agent = rng.choice(["Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15",
                            "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Claude/1.0 (iOS 18.1)"])
        email, user_id = rng.choice(self.users)
        if kind == "user_actor":
            return {"type": kind, "email_address": email, "user_id": user_id, "ip_address": ip, "user_agent": agent}
        if kind == "api_actor":
            return {"type": kind, "api_key_id": _tagged(rng, "apikey_01", 22), "ip_address": ip,
                    "user_agent": "python-requests/2.32"}
        if kind == "admin_api_key_actor":
            return {"type": kind, "admin_api_key_id": _tagged(rng, "adminkey_01", 22), "ip_address": ip,
                    "user_agent": agent}
        if kind == "unauthenticated_user_actor":
            return {"type": kind, "ip_address": ip, "user_agent": agent, "unauthenticated_email_address": email}
        if kind == "anthropic_actor":
            return {"type": kind, "email_address": None}
        if kind == "system_actor":
            return {"type": kind, "service": rng.choice([None, "memory_migration", "retention"])}
        if kind == "scim_directory_sync_actor":
            return {"type": kind, "workos_event_id": _tagged(rng, "event_01", 24),
                    "directory_id": _tagged(rng, "directory_01", 24), "idp_connection_type": "OktaSCIMV2"}
        if kind == "service_account_actor":
            return {"type": kind, "service_account_id": _tagged(rng, "svcacct_01", 22), "ip_address": ip,
                    "user_agent": agent}
        if kind == "federated_identity_actor":
            return {"type": kind, "issuer": "https://token.actions.githubusercontent.com",
                    "subject": "repo:example/app:ref:refs/heads/main",
                    "audience": ["https://api.anthropic.com"], "ip_address": ip, "user_agent": agent}
        if kind == "federated_actor":
            return {"type": kind, "provider": {"type": "aws", "account_id": "123456789012",
                                                "signed_principal": "arn:aws:iam::123456789012:role/ci"},
                    "subject": None, "ip_address": ip, "user_agent": agent}
        return {"type": kind, "external_client_id": _tagged(rng, "client_", 16), "kid_hash": _tagged(rng, "", 32),
                "ip_address": ip, "user_agent": agent}

    def _value(self, name: str, kind: str) -> Any:
        """A plausible value from the field's documented type text (the data file has no schema)."""
        rng = self.rng
        if "boolean" in kind:
            return rng.random() < 0.5
        if "number" in kind:
            return rng.randint(1, 500)
        if "array of string" in kind:
            return [rng.choice(["read:compliance_activities", "api:admin", "user", "admin"])]
        if "array of object" in kind:
            return [{"type": "setting", "previous_value": False, "current_value": True}]
        if kind.startswith("object"):
            return {"type": "message", "id": _tagged(rng, "msg_01", 22), "parent": None}
        if "RFC 3339" in kind:
            # Payload content only (e.g. an expiry), never ordering: host time is good enough.
            return format_rfc3339(time.time() - rng.randint(3600, 172800))
        if "email" in name:
            return rng.choice(self.users)[0]
        if name.endswith("_id"):
            return _tagged(rng, name.removesuffix("_id")[:12] + "_01", 22)
        if "enum" in kind:
            return rng.choice(["created", "updated", "safety_review", "GET"])
        if "null" in kind and rng.random() < 0.3:
            return None
        return rng.choice(["Quarterly report", "Onboarding notes", "design-review", "main"])

    def make(self, created: float, kind: str | None = None, form: str | None = None, **extra: Any) -> dict[str, Any]:
        """One activity created at `created` (epoch seconds); `extra` overrides or adds fields.
        `form` writes created_at in another RFC 3339 form (see CREATED_FORMS)."""
        rng = self.rng
        if kind is None:
            kind = rng.choice(COMMON) if rng.random() < 0.4 else rng.choice(self.names)
        spec = self.types.get(kind, {"actor_types": ["user_actor"], "fields": {}})
        org_id, org_uuid = rng.choice(self.orgs)
        no_org = kind in NO_ORG_TYPES
        activity_id = self.new_id()  # drawn before the timestamp: a seed keeps its sequence
        # Whole seconds get random microseconds: real timestamps almost never tie, and the
        # plugin's id tie-break must be exercised on purpose, not by accident.
        stamp = created if created % 1 or form else created + 1e-6 * rng.randint(1, 999999)
        record: dict[str, Any] = {
            "id": activity_id,
            "created_at": format_created(stamp, form, rng) if form else format_rfc3339(stamp),
            "organization_id": None if no_org else org_id,
            "organization_uuid": None if no_org else org_uuid,
            "actor": self.actor(rng.choice(spec["actor_types"])),
            "type": kind,
        }
        for name, ftype in spec["fields"].items():
            if ftype.startswith("optional") and rng.random() < 0.2:
                continue
            record[name] = self._value(name, ftype)
        record.update(extra)
        return record


# created_at as the API documents it (whole seconds), as it sends it (microseconds, Z), and the
# other RFC 3339 forms a parser downstream must read too: the simulator mixes them in.
# "offset-whole" (…T12:00:00+02:00) is left out of the mix: Fluent Bit's parser cannot read it
# exactly (see conf/fluent-bit/parsers-anthropic-compliance-input.conf); the API sends Z.
CREATED_FORMS = ("whole", "tenths", "millis", "nanos", "offset")


def created_instant(start: float, end: float, form: str, rng: random.Random) -> float:
    """A time in [start, end) that `form` writes exactly (a whole second for "whole")."""
    step = {"whole": 1.0, "offset-whole": 1.0, "tenths": 0.1, "millis": 0.001}.get(form)
    moment = rng.uniform(start, end)
    if step is None:
        return moment
    snapped = math.ceil(moment / step) * step
    return snapped if snapped < end else math.floor(moment / step) * step


def format_created(moment: float, form: str, rng: random.Random) -> str:
    utc = datetime.fromtimestamp(moment, timezone.utc)
    if form in ("offset", "offset-whole"):
        zone = timezone(timedelta(hours=2)) if form == "offset" else timezone(-timedelta(hours=5, minutes=30))
        local = utc.astimezone(zone)
        text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{local.microsecond:06d}" if form == "offset" else "")
        return text + local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]
    base = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if form == "whole":
        return base + "Z"
    if form == "tenths":
        return f"{base}.{utc.microsecond // 100000}Z"  # fromtimestamp rounds to the microsecond
    if form == "millis":
        return f"{base}.{utc.microsecond // 1000:03d}Z"
    return f"{base}.{utc.microsecond:06d}{rng.randint(0, 999):03d}Z"  # nanos: digits below a microsecond
