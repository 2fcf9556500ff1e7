"""Field values of the catalog's type that look like a real organization's.

The catalog (data/activity_types.json) gives each field a type as the API reference writes it
(`"device_key" or "unspecified" or "webauthn"`, `optional string or null`, `string (RFC 3339)`);
the value model (data/values.json) says which value of that type looks real for a field name.
This module reads both; it has no branch per activity type, so a new type needs only its
catalog entry.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from ..datafiles import load
from ..timeutil import format_rfc3339

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
MISSING = object()  # an optional field left out of the record


@dataclass(frozen=True)
class FieldType:
    """A catalog type: `base` is literal, date, string, number, boolean, array of string,
    array of object, object, object or array (a union of them), or map."""

    base: str
    optional: bool = False
    nullable: bool = False
    literals: tuple[str, ...] = ()


@lru_cache(maxsize=None)
def parse_type(text: str) -> FieldType:
    optional = text.startswith("optional ")
    body = text.removeprefix("optional ").removesuffix("Deprecated")
    nullable = body.endswith(" or null")
    body = body.removesuffix(" or null")
    if body.startswith('"'):
        return FieldType("literal", optional, nullable, tuple(re.findall(r'"([^"]*)"', body)))
    if body == "string (RFC 3339)":
        base = "date"
    elif body.startswith("array of object or "):
        base = "object or array"
    elif body.startswith("object"):
        base = "object"
    elif body.startswith("map["):
        base = "map"
    elif body in ("string", "number", "boolean", "array of string", "array of object"):
        base = body
    else:
        raise ValueError(f"a catalog type this model does not know: {text!r}")
    return FieldType(base, optional, nullable)


@lru_cache(maxsize=1)
def value_model() -> dict[str, Any]:
    return load("values.json")


def tagged(rng: random.Random, prefix: str, n: int = 22) -> str:
    """An id in the API's style: a prefix, then base58."""
    return prefix + "".join(rng.choice(B58) for _ in range(n))


class Values:
    """Values for one factory: `cast` holds the recurring people, keys and projects; each
    record's `chosen` keeps one member per pool and slot, so a record's mcp_server_id and
    mcp_server_name name the same server."""

    def __init__(self, rng: random.Random, cast: dict[str, list[dict[str, Any]]]) -> None:
        self.rng, self.cast, self.model = rng, cast, value_model()
        self.gens: dict[str, Callable[..., Any]] = {
            "id": self._id, "date": self._date, "hex": lambda name, spec, ctx: "%064x" % rng.getrandbits(256),
            "uuid": lambda name, spec, ctx: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "compliance_url": self._compliance_url,
        }

    def field(self, name: str, text: str, ctx: dict[str, Any]) -> Any:
        """A value of catalog type `text` for field `name`, or MISSING for an optional field
        left out. `ctx`: the record being made (its created epoch, chosen cast members)."""
        ftype, rng = parse_type(text), self.rng
        if ftype.optional and rng.random() < 0.15:
            return MISSING
        if ftype.nullable and rng.random() < 0.1:
            return None
        if ftype.base == "literal":
            picks = [v for v in self.model["names"].get(name, {}).get("pick", ()) if v in ftype.literals]
            if picks:  # the usual values, where the field's set has them (the same name has other sets elsewhere)
                return rng.choice(picks)
            usual = [v for v in ftype.literals if v != "unspecified"] or list(ftype.literals)
            return rng.choice(usual)  # "unspecified" is the protobuf default: real records rarely carry it
        if ftype.base == "date":
            return self._date(name, self.rule(name) or {"days": [-2, 0]}, ctx)
        if ftype.base in ("object", "object or array", "array of object", "map"):
            shape = self.model["objects"].get(name)
            if shape is None:
                shape = self.model["by_type"][ftype.base if ftype.base in self.model["by_type"] else "object"]["object"]
            return json.loads(json.dumps(shape))  # a copy: records must not share objects
        value = self.apply(self.rule(name), name, ctx)
        if ftype.base == "array of string":
            first = value if type(value) is str else self.apply(self.model["by_type"]["string"], name, ctx)
            second = self.apply(self.rule(name), name, ctx) if rng.random() < 0.3 else first
            return [first] if second == first or type(second) is not str else [first, second]
        if not _fits(value, ftype):
            value = self.apply(self.model["by_type"][ftype.base], name, ctx)
        return value

    def rule(self, name: str) -> dict[str, Any] | None:
        model = self.model
        if name in model["names"]:
            return model["names"][name]
        for suffix, rule in model["suffixes"]:
            if name.endswith(suffix):
                return rule
        return None

    def apply(self, rule: dict[str, Any] | None, name: str, ctx: dict[str, Any]) -> Any:
        rng = self.rng
        if rule is None:
            return MISSING
        if "pick" in rule:
            return rng.choice(rule["pick"])
        if "int" in rule:
            return rng.randint(*rule["int"])
        if "money" in rule:
            return f"{rng.uniform(*rule['money']):.2f}"
        if "ref" in rule:
            return self.ref(rule["ref"], ctx)
        if "template" in rule:
            return self.template(rule["template"])
        if "gen" in rule:
            return self.gens[rule["gen"]](name, rule, ctx)
        if "object" in rule:
            return json.loads(json.dumps(rule["object"]))
        raise ValueError(f"values.json: a rule this model does not know: {rule}")

    def ref(self, ref: str, ctx: dict[str, Any]) -> Any:
        """`pool.attr` or `pool:slot.attr`: a cast member, the same one for the whole record."""
        where, attr = ref.split(".")
        pool, _, slot = where.partition(":")
        chosen = ctx.setdefault("chosen", {})
        if (pool, slot) not in chosen:
            members = self.cast[pool]
            if pool == "people":  # the target of an action is someone other than its actor
                others = [p for p in members if p is not ctx.get("person")]
                taken = [m for (p, _), m in chosen.items() if p == "people"]
                members = [p for p in others if p not in taken] or others or members
            chosen[(pool, slot)] = self.rng.choice(members)
        return chosen[(pool, slot)][attr]

    def template(self, text: str) -> str:
        rng, model = self.rng, self.model
        return text.format(domain=rng.choice(model["cast"]["domains"]), word=rng.choice(model["words"]),
                           hex="%012x" % rng.getrandbits(48), n=rng.randint(1, 99), host=rng.choice(model["hosts"]))

    def _id(self, name: str, spec: dict[str, Any], ctx: dict[str, Any]) -> str:
        if "prefix" in spec:
            return tagged(self.rng, spec["prefix"], spec.get("length", 22))
        entity = name.removeprefix("previous_").removeprefix("new_").removesuffix("s").removesuffix("_id")
        return tagged(self.rng, self.model["id_prefixes"].get(entity, entity + "_") + "01")

    def _date(self, name: str, spec: dict[str, Any], ctx: dict[str, Any]) -> str:
        low, high = spec.get("days", [-2, 0])
        return format_rfc3339(float(int(ctx["created"] + self.rng.uniform(low, high) * 86400)))

    def _compliance_url(self, name: str, spec: dict[str, Any], ctx: dict[str, Any]) -> str:
        since = format_rfc3339(float(int(ctx["created"] - 300)))
        return f"https://api.anthropic.com/v1/compliance/activities?limit=5000&order=asc&created_at.gte={since}"


def _fits(value: Any, ftype: FieldType) -> bool:
    base = ftype.base
    if value is MISSING:
        return False
    if value is None:
        return ftype.nullable
    if base == "string":
        return type(value) is str
    if base == "number":
        return type(value) in (int, float)
    if base == "boolean":
        return type(value) is bool
    return True
