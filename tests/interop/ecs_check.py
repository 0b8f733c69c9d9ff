"""Checks one wardgate event against the Elastic Common Schema field reference.

`check_event(event)` returns a list of violations (empty: conformant). Every leaf
field outside `wardgate.*` must be an ECS field (dotted names, as ECS flattens
them), its JSON value must fit the field's ECS type, and where ECS lists allowed
values (`event.kind`, `event.category`, `event.type`, `event.outcome`) or a
pattern, the value must be one of them / match it; a field ECS normalises to an
array (`event.category`, `event.type`) must be one. Every event wardgate emits
must carry the four categorization fields, `ecs.version`, `@timestamp`, and who
saw it: `observer.name`, `observer.hostname`, `observer.version`,
`observer.type`, `host.name`, `host.hostname`.

The reference is tests/data/ecs/ecs_flat.yml (vendored unchanged from the shared
ECS reference, ../shared/ecs; see the README there; WARDGATE_ECS_FLAT names
another copy). docs/events.md describes the contract this holds wardgate to.
"""
import functools
import ipaddress
import math
import os
import re
from datetime import datetime
from pathlib import Path

ECS_FLAT = Path(os.environ.get("WARDGATE_ECS_FLAT")
               or Path(__file__).resolve().parents[1] / "data" / "ecs" / "ecs_flat.yml")
ECS_VERSION = "9.5.0-dev"

# wardgate's own namespace: not ECS, not checked here (the golden file pins it).
OWN = "wardgate"
# Fields an event must carry: the two ECS marks required, the categorization
# fields (issue 19: a SIEM files events by them) and the gateway that saw it. The
# version wardgate declares must be the reference's.
REQUIRED = ("@timestamp", "ecs.version", "event.kind", "event.category", "event.type", "event.outcome",
            "observer.name", "observer.hostname", "observer.version", "observer.type",
            "host.name", "host.hostname")

STRING_TYPES = {"keyword", "constant_keyword", "wildcard", "match_only_text", "text"}
INT_RANGES = {
    "long": (-(2**63), 2**63 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-(2**7), 2**7 - 1),
    "unsigned_long": (0, 2**64 - 1),
}
NUMBER_TYPES = {"float", "half_float", "scaled_float", "double"}
OBJECT_TYPES = {"object", "flattened"}

# RFC 3339 date-time (section 5.6); the seconds fraction is optional.
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


@functools.lru_cache(maxsize=None)
def ecs_fields(path=ECS_FLAT):
    """The ECS flat field reference: {dotted name: definition}."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=loader)


def json_type(v):
    """The JSON type of a Python value parsed from JSON."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def is_rfc3339(s):
    m = RFC3339.match(s) if isinstance(s, str) else None
    if not m:
        return False
    try:
        datetime.fromisoformat(s[:19].replace("t", "T"))
    except ValueError:
        return False
    off = m.group(8)
    return off in "Zz" or (int(off[1:3]) < 24 and int(off[4:6]) < 60)


def is_ip(s):
    if not isinstance(s, str) or "%" in s:
        return False
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def scalar_problem(ftype, v):
    """Why the JSON value `v` does not fit the ECS type `ftype`, or None."""
    if ftype in STRING_TYPES:
        ok = isinstance(v, str)
    elif ftype in INT_RANGES:
        lo, hi = INT_RANGES[ftype]
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
    elif ftype in NUMBER_TYPES:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    elif ftype == "boolean":
        ok = isinstance(v, bool)
    elif ftype == "date":
        if not isinstance(v, str):
            return f"ECS type date wants an RFC 3339 string, got {json_type(v)}"
        ok = is_rfc3339(v)
        if not ok:
            return f"ECS type date wants an RFC 3339 string, got {v!r}"
    elif ftype == "ip":
        if not isinstance(v, str):
            return f"ECS type ip wants an IPv4/IPv6 address string, got {json_type(v)}"
        ok = is_ip(v)
        if not ok:
            return f"ECS type ip wants an IPv4/IPv6 address, got {v!r}"
    else:
        return None  # a type this checker does not know: no claim either way
    if ok:
        return None
    want = {**{t: "a string" for t in STRING_TYPES}, **{t: "an integer in range" for t in INT_RANGES},
            **{t: "a number" for t in NUMBER_TYPES}, "boolean": "true or false"}[ftype]
    return f"ECS type {ftype} wants {want}, got {json_type(v)} {v!r}"


def geo_point_problem(v):
    if isinstance(v, dict):
        if set(v) == {"lat", "lon"} and all(isinstance(v[k], (int, float)) and not isinstance(v[k], bool)
                                            for k in v):
            return None
    elif isinstance(v, str):
        return None
    elif isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return None
    return f"ECS type geo_point wants {{lat, lon}}, 'lat,lon' or [lon, lat], got {v!r}"


class Checker:
    """Checks events against one ECS reference, remembering verdicts on values seen."""

    def __init__(self, fields=None, required=REQUIRED):
        self.fields = ecs_fields() if fields is None else fields
        self.required = tuple(required)
        self._memo = {}

    def check(self, event):
        """Violations of `event` (a dict parsed from one JSON line), as strings."""
        if not isinstance(event, dict):
            return [f"the event is not a JSON object: {json_type(event)}"]
        out = []
        for name in self.required:
            value = event
            for part in ([name] if name in event else name.split(".")):
                value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                out.append(f"{name}: required by ECS, missing")
        declared = event.get("ecs", {}).get("version") if isinstance(event.get("ecs"), dict) else None
        if declared is not None and declared != ECS_VERSION:
            out.append(f"ecs.version: {declared!r}, but the reference checked is {ECS_VERSION}")
        self._walk(event, "", out)
        categories = event.get("event", {}).get("category") if isinstance(event.get("event"), dict) else None
        types = event.get("event", {}).get("type") if isinstance(event.get("event"), dict) else None
        if categories is not None and types is not None:
            out += self._category_types(categories, types)
        return out

    def _walk(self, v, path, out):
        if path == OWN:
            return
        spec = self.fields.get(path) if path else None
        if spec is not None:
            self._field(spec, v, path, out)
        elif isinstance(v, dict):
            if not v and path:
                out.append(f"{path}: not an ECS field (an empty object)")
            for k, sub in v.items():
                self._walk(sub, f"{path}.{k}" if path else k, out)
        elif isinstance(v, list):
            # An array of objects: each element's fields are named as the array's.
            for item in v:
                self._walk(item, path, out)
        else:
            out.append(f"{path}: not an ECS field (value {v!r}); wardgate's own fields go under wardgate.*")

    def _field(self, spec, v, path, out):
        ftype = spec.get("type")
        if ftype in OBJECT_TYPES:
            if not isinstance(v, dict):
                out.append(f"{path}: ECS type {ftype} wants an object, got {json_type(v)}")
            elif ftype == "object" and spec.get("object_type"):
                for k, sub in v.items():
                    for item in sub if isinstance(sub, list) else [sub]:
                        p = scalar_problem(spec["object_type"], item)
                        if p:
                            out.append(f"{path}.{k}: {p}")
            return
        if ftype == "nested":
            items = v if isinstance(v, list) else [v]
            for item in items:
                if isinstance(item, dict):
                    for k, sub in item.items():
                        self._walk(sub, f"{path}.{k}", out)
                else:
                    # ECS also declares a few arrays of keywords as nested.
                    p = scalar_problem("keyword", item)
                    if p:
                        out.append(f"{path}: ECS type nested wants objects (or strings), got {json_type(item)}")
            return
        if ftype == "geo_point":
            p = geo_point_problem(v)
            if p:
                out.append(f"{path}: {p}")
            return
        # A scalar field. Any ECS field may hold an array of values of its type,
        # and one ECS normalises to an array must be one.
        if "array" in (spec.get("normalize") or ()) and not isinstance(v, list):
            out.append(f"{path}: ECS normalizes it to an array, got {json_type(v)} {v!r}")
        for item in v if isinstance(v, list) else [v]:
            if isinstance(item, (dict, list)):
                out.append(f"{path}: ECS type {ftype} wants a value, got {json_type(item)}")
                continue
            key = (path, json_type(item), item)
            if key not in self._memo:
                self._memo[key] = self._value_problem(spec, ftype, item, path)
            if self._memo[key]:
                out.append(self._memo[key])

    @staticmethod
    def _value_problem(spec, ftype, v, path):
        p = scalar_problem(ftype, v)
        if p:
            return f"{path}: {p}"
        allowed = spec.get("allowed_values")
        if allowed and v not in {a["name"] for a in allowed}:
            names = ", ".join(a["name"] for a in allowed)
            return f"{path}: {v!r} is not an ECS allowed value ({names})"
        pattern = spec.get("pattern")
        if pattern and isinstance(v, str) and not re.search(pattern, v):
            return f"{path}: {v!r} does not match the ECS pattern {pattern}"
        return None

    def _category_types(self, categories, types):
        """ECS pairs each event.category with the event.type values that go with it."""
        spec = self.fields.get("event.category", {})
        expected = {a["name"]: set(a.get("expected_event_types") or ()) for a in spec.get("allowed_values", ())}
        cats = categories if isinstance(categories, list) else [categories]
        out = []
        for t in types if isinstance(types, list) else [types]:
            if not any(t in expected.get(c, ()) for c in cats):
                out.append(f"event.type: {t!r} is not an ECS expected type for event.category {cats}")
        return out


@functools.lru_cache(maxsize=1)
def default_checker():
    return Checker()


def check_event(event):
    """Violations of one event (a dict) against ECS; an empty list when it conforms."""
    return default_checker().check(event)
