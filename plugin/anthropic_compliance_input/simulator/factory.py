"""Realistic activities for the simulated feed.

Records are drawn from the real activity types, their allowed actor variants and fields
(data/activity_types.json), with values of each field's catalog type chosen by the value model
(data/values.json, read by values.py): a small cast of people, keys and projects that recurs,
people at work in their own time zones, logins at the start of their day, rare admin changes.
A seeded RNG keeps runs reproducible.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from .. import __version__
from ..timeutil import format_rfc3339
from ..datafiles import load
from .values import MISSING, Values, tagged, value_model

ALL_ACTORS = ("user_actor", "api_actor", "admin_api_key_actor", "unauthenticated_user_actor",
              "anthropic_actor", "system_actor", "scim_directory_sync_actor", "service_account_actor",
              "federated_identity_actor", "federated_actor", "attested_device_actor")
# Types the API reports without an organization (log-in flows, the audit trail of API access).
NO_ORG_TYPES = {"compliance_api_accessed", "user_logged_out", "sso_login_initiated",
                "sso_login_failed", "sso_login_succeeded", "magic_link_login_initiated",
                "magic_link_login_failed", "magic_link_login_succeeded"}
COLLECTOR_AGENT = f"anthropic-compliance-input/{__version__}"


@lru_cache(maxsize=1)
def activity_types() -> dict[str, dict[str, Any]]:
    """Every known type with its actor variants and fields; cached because the model checks
    `activity_types[]` filters against it on every request."""
    types = load("activity_types.json")["types"]
    # Documented by the API but missing from the reference list; shaped like anthropic_access.
    types.setdefault("cmek_preserve", dict(types["anthropic_access"]))
    return {name: {"actor_types": (spec or {}).get("actor_types") or list(ALL_ACTORS),
                   "fields": (spec or {}).get("fields") or {}} for name, spec in types.items()}


def _tagged(rng: random.Random, prefix: str, n: int = 24) -> str:
    return tagged(rng, prefix, n)


class ActivityFactory:
    """Realistic activities: the real types, their allowed actor variants and fields, a
    recurring cast, and the rhythm of a working day."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = rng = random.Random(seed)
        self.types = activity_types()
        self.names = sorted(self.types)  # sorted: the seed alone decides the sequence
        self.orgs = [(_tagged(rng, "org_"), str(uuid.UUID(int=rng.getrandbits(128), version=4)))
                     for _ in range(2)]
        model = value_model()
        self.mix = model["mix"]
        self.cast = self._cast(model["cast"])
        self.people = self.cast["people"]
        self.users = [(p["email"], p["id"]) for p in self.people]
        self.values = Values(rng, self.cast)
        self.logged_in: dict[str, str] = {}  # person id -> the local day of their last login
        self.automated_by: str | None = None  # the actor variant _plan chose for an automated activity

    def _cast(self, spec: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        rng = self.rng
        people = []
        for p in spec["people"]:
            first, last = p["name"].lower().split(" ", 1)
            home = rng.choice(spec["home_ips"])
            home_ip = home + (f"{rng.randint(2, 250)}" if home.endswith(".") else f"{rng.randint(1, 0xffff):x}")
            people.append({"name": p["name"], "email": f"{first}.{last}@{spec['domains'][p['domain']]}",
                           "id": _tagged(rng, "user_01", 22), "role": p["role"], "utc_offset": p["utc_offset"],
                           "ips": [rng.choice(spec["office_ipv4"]), home_ip],
                           "agents": rng.sample(spec["user_agents"], 2)})
        named = lambda key, prefix: [{"name": n, "id": _tagged(rng, prefix, 22)} for n in spec[key]]  # noqa: E731
        return {"people": people, "api_keys": named("api_keys", "apikey_01"),
                "admin_keys": named("admin_keys", "adminkey_01"),
                "service_accounts": named("service_accounts", "svcacct_01"),
                "projects": named("projects", "claude_proj_01"), "mcp_servers": named("mcp_servers", "mcpsrv_01"),
                "groups": named("groups", "group_01"), "workspaces": named("workspaces", "wrkspc_01"),
                "roles": named("roles", "role_01"),
                "chats": [{"id": _tagged(rng, "claude_chat_01", 22)} for _ in range(24)]}

    def new_id(self) -> str:
        return tagged(self.rng, "activity_01", 22)

    # -- who acts, and what they do ---------------------------------------------------------------
    def at_work(self, created: float) -> list[dict[str, Any]]:
        """The people whose local time is between work_hours. Every day is a working day: the
        demo shifts its day by whole days, and must tell the same story on a Sunday."""
        start, end = value_model()["cast"]["work_hours"]
        working = []
        for p in self.people:
            local = datetime.fromtimestamp(created, timezone.utc) + timedelta(hours=p["utc_offset"])
            if start <= local.hour < end:
                working.append(p)
        return working

    def _plan(self, created: float) -> tuple[str, dict[str, Any] | None]:
        """The kind of the next activity and who does it: mostly chat and project work by
        someone at work, their login first on a new local day, a long tail of every other type."""
        rng, mix = self.rng, self.mix
        if rng.random() < mix["automated"]:  # keys, service accounts, directory sync: any hour
            kinds, actors, weights = zip(*mix["automation"])
            pick = rng.choices(range(len(kinds)), weights)[0]
            self.automated_by = actors[pick]
            return kinds[pick], None
        tail = rng.choice(self.names) if rng.random() < mix["tail"] else None
        working = self.at_work(created)
        if not working:
            kinds, weights = zip(*mix["night"].items())
            return tail or rng.choices(kinds, weights)[0], None
        if tail and tail.startswith(tuple(mix["admin_prefixes"])):  # admin work is done by admins
            working = [p for p in working if p["role"] in ("admin", "primary_owner")] or working
        person = rng.choice(working)
        day = (datetime.fromtimestamp(created, timezone.utc) + timedelta(hours=person["utc_offset"])).date().isoformat()
        if self.logged_in.get(person["id"]) != day:
            self.logged_in[person["id"]] = day
            return mix["login"], person
        kinds, weights = zip(*mix["work"].items())
        return tail or rng.choices(kinds, weights)[0], person

    def actor(self, kind: str, person: dict[str, Any] | None = None, activity: str = "") -> dict[str, Any]:
        """One actor of the given variant, with the fields that variant really carries, drawn
        from the cast."""
        rng = self.rng
        spec = value_model()["cast"]
        if kind == "user_actor":
            if person is None:
                admins = [p for p in self.people if p["role"] in ("admin", "primary_owner")]
                admin_work = activity.startswith(tuple(self.mix["admin_prefixes"]))
                person = rng.choice(admins if admin_work else self.people)
            return {"type": kind, "email_address": person["email"], "user_id": person["id"],
                    "ip_address": rng.choice(person["ips"]), "user_agent": rng.choice(person["agents"])}
        ip = rng.choice(spec["office_ipv4"])
        if kind == "api_actor":
            key = self.cast["api_keys"][0] if activity == "compliance_api_accessed" else rng.choice(self.cast["api_keys"])
            agent = COLLECTOR_AGENT if activity == "compliance_api_accessed" else rng.choice(spec["service_user_agents"])
            return {"type": kind, "api_key_id": key["id"], "ip_address": ip, "user_agent": agent}
        if kind == "admin_api_key_actor":
            return {"type": kind, "admin_api_key_id": rng.choice(self.cast["admin_keys"])["id"], "ip_address": ip,
                    "user_agent": spec["service_user_agents"][-1]}
        if kind == "unauthenticated_user_actor":
            who = person or rng.choice(self.people)
            return {"type": kind, "ip_address": rng.choice(who["ips"]), "user_agent": rng.choice(who["agents"]),
                    "unauthenticated_email_address": who["email"]}
        if kind == "anthropic_actor":
            return {"type": kind, "email_address": None}
        if kind == "system_actor":
            return {"type": kind, "service": rng.choice([None, "memory_migration", "retention"])}
        if kind == "scim_directory_sync_actor":
            return {"type": kind, "workos_event_id": _tagged(rng, "event_01", 24),
                    "directory_id": "directory_01" + self.orgs[0][0][4:], "idp_connection_type": "OktaSCIMV2"}
        if kind == "service_account_actor":
            return {"type": kind, "service_account_id": rng.choice(self.cast["service_accounts"])["id"],
                    "ip_address": ip, "user_agent": rng.choice(spec["service_user_agents"])}
        if kind == "federated_identity_actor":
            return {"type": kind, "issuer": "https://token.actions.githubusercontent.com",
                    "subject": "repo:northwind/web:ref:refs/heads/main",
                    "audience": ["https://api.anthropic.com"], "ip_address": ip, "user_agent": "actions/github-script"}
        if kind == "federated_actor":
            return {"type": kind, "provider": {"type": "aws", "account_id": "123456789012",
                                                "signed_principal": "arn:aws:iam::123456789012:role/ci-deploy"},
                    "subject": None, "ip_address": ip, "user_agent": "aws-sdk-python/1.35.0"}
        return {"type": kind, "external_client_id": _tagged(rng, "client_", 16), "kid_hash": "%032x" % rng.getrandbits(128),
                "ip_address": ip, "user_agent": rng.choice(spec["user_agents"])}

    def make(self, created: float, kind: str | None = None, form: str | None = None, **extra: Any) -> dict[str, Any]:
        """One activity created at `created` (epoch seconds); `extra` overrides or adds fields.
        `form` writes created_at in another RFC 3339 form (see CREATED_FORMS)."""
        rng = self.rng
        person = None
        if kind is None:
            kind, person = self._plan(created)
        spec = self.types.get(kind, {"actor_types": ["user_actor"], "fields": {}})
        org_id, org_uuid = self.orgs[0] if rng.random() < 0.9 else self.orgs[1]
        no_org = kind in NO_ORG_TYPES
        activity_id = self.new_id()  # drawn before the timestamp: a seed keeps its sequence
        # Whole seconds get random microseconds: real timestamps almost never tie, and the
        # plugin's id tie-break must be exercised on purpose, not by accident.
        stamp = created if created % 1 or form else created + 1e-6 * rng.randint(1, 999999)
        allowed = spec["actor_types"]
        automated, self.automated_by = self.automated_by, None
        if automated in allowed:
            actor_kind = automated
        elif "api_actor" in allowed and kind == "compliance_api_accessed":  # this collector's requests
            actor_kind = "api_actor"
        elif "user_actor" in allowed and (person is not None or rng.random() < 0.8):
            actor_kind = "user_actor"
        else:
            actor_kind = rng.choice(allowed)
        record: dict[str, Any] = {
            "id": activity_id,
            "created_at": format_created(stamp, form, rng) if form else format_rfc3339(stamp),
            "organization_id": None if no_org else org_id,
            "organization_uuid": None if no_org else org_uuid,
            "actor": self.actor(actor_kind, person, kind),
            "type": kind,
        }
        ctx: dict[str, Any] = {"created": stamp, "person": person}
        for name, ftype in spec["fields"].items():
            value = self.values.field(name, ftype, ctx)
            if value is not MISSING:
                record[name] = value
        record.update(extra)
        return record

    def incident(self, start: float) -> list[dict[str, Any]]:
        """The demo's story (values.json `incident`), from `start` on: one admin's account, from
        an address none of the cast uses, disables the organization's defences one by one."""
        story = value_model()["incident"]
        who = next(p for p in self.people if p["name"] == story["actor"])
        owner = next(p for p in self.people if p["role"] == "primary_owner")
        intruder = dict(who, ips=[story["ip"]], agents=[story["user_agent"]])
        others = [c["id"] for c in self.cast["chats"]]
        records = []
        for step in story["steps"]:
            for i in range(step.get("repeat", 1)):
                created = start + step["minute"] * 60 + i * step.get("every_seconds", 0) + self.rng.uniform(0, 5)
                record = self.make(created, step["type"], **step["fields"])
                record["actor"] = self.actor("user_actor", intruder, step["type"])
                record["organization_id"], record["organization_uuid"] = (
                    (None, None) if step["type"] in NO_ORG_TYPES else self.orgs[0])
                if step["type"].endswith("_created"):  # a new object: a new id, not one of the cast's
                    for name, value in list(record.items()):
                        if name.endswith("_id") and name != "id" and isinstance(value, str) and "_01" in value:
                            record[name] = tagged(self.rng, value[:value.index("_01") + 3], 22)
                if step["type"] == "claude_chat_access_failed":
                    record["claude_chat_id"] = self.rng.choice(others)
                if step["type"] == "primary_owner_transferred":
                    record.update(previous_owner_id=owner["id"], new_owner_id=who["id"])
                records.append(record)
        return records


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
