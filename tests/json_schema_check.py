"""A small JSON Schema validator for the keywords `hirestream schema export` writes.

The virtual environment has no `jsonschema` package and the project adds no
dependency for a test, so this checks the exported documents themselves (not
pydantic's models) against instances. Every keyword it meets must be one it knows:
an unknown constraint fails loudly instead of passing silently.
"""
from __future__ import annotations

import re
from typing import Any

_ANNOTATIONS = {"title", "description", "default", "$schema", "$id", "$defs", "discriminator", "examples"}
_TYPES = {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}
# RFC 3339 date-time: a zone (Z or an offset) is required
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", re.I)


def _is_type(x: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(x, int) and not isinstance(x, bool)
    if kind == "number":
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    return isinstance(x, _TYPES[kind])


def errors(instance: Any, schema: dict, root: dict | None = None, path: str = "$") -> list[str]:
    """Every way `instance` breaks `schema` (empty: valid)."""
    root = root if root is not None else schema
    out: list[str] = []
    for key, rule in schema.items():
        if key in _ANNOTATIONS or key in ("then", "else"):
            continue
        if key == "$ref":
            assert rule.startswith("#/$defs/"), rule
            out += errors(instance, root["$defs"][rule[len("#/$defs/"):]], root, path)
        elif key == "type":
            if not any(_is_type(instance, k) for k in ([rule] if isinstance(rule, str) else rule)):
                out.append(f"{path}: not of type {rule}")
        elif key == "enum":
            if instance not in rule:
                out.append(f"{path}: {instance!r} not one of {rule}")
        elif key == "const":
            if instance != rule:
                out.append(f"{path}: {instance!r} is not {rule!r}")
        elif key == "anyOf":
            if all(errors(instance, s, root, path) for s in rule):
                out.append(f"{path}: matches none of anyOf")
        elif key == "allOf":
            for s in rule:
                out += errors(instance, s, root, path)
        elif key == "not":
            if not errors(instance, rule, root, path):
                out.append(f"{path}: matches what it must not")
        elif key == "if":
            branch = "then" if not errors(instance, rule, root, path) else "else"
            out += errors(instance, schema.get(branch, {}), root, path)
        elif key in ("properties", "required", "additionalProperties", "maxProperties",
                     "patternProperties", "propertyNames"):
            if isinstance(instance, dict):
                out += _object_rule(key, rule, instance, schema, root, path)
        elif key in ("items", "maxItems", "minItems"):
            if isinstance(instance, list):
                if key == "items":
                    for i, x in enumerate(instance):
                        out += errors(x, rule, root, f"{path}[{i}]")
                elif (len(instance) > rule) if key == "maxItems" else (len(instance) < rule):
                    out.append(f"{path}: {len(instance)} items breaks {key} {rule}")
        elif key in ("maxLength", "minLength", "pattern", "format"):
            if isinstance(instance, str):
                if key == "maxLength" and len(instance) > rule or key == "minLength" and len(instance) < rule:
                    out.append(f"{path}: length {len(instance)} breaks {key} {rule}")
                elif key == "pattern" and not re.search(rule, instance):
                    out.append(f"{path}: does not match {rule}")
                elif key == "format":
                    assert rule == "date-time", f"unknown format {rule}"
                    if not _DATE_TIME.match(instance):
                        out.append(f"{path}: not an RFC 3339 date-time with a zone")
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if _is_type(instance, "number"):
                bad = {"minimum": instance < rule, "maximum": instance > rule,
                       "exclusiveMinimum": instance <= rule, "exclusiveMaximum": instance >= rule}[key]
                if bad:
                    out.append(f"{path}: {instance} breaks {key} {rule}")
        else:
            raise AssertionError(f"keyword {key!r} is not checked here: teach tests/json_schema_check.py")
    return out


def _object_rule(key: str, rule: Any, obj: dict, schema: dict, root: dict, path: str) -> list[str]:
    out: list[str] = []
    if key == "properties":
        for name, sub in rule.items():
            if name in obj:
                out += errors(obj[name], sub, root, f"{path}.{name}")
    elif key == "required":
        out += [f"{path}: missing {name}" for name in rule if name not in obj]
    elif key == "additionalProperties":
        known = set(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for name in obj:
            if name in known or any(re.search(p, name) for p in patterns):
                continue
            if rule is False:
                out.append(f"{path}: unexpected {name}")
            elif isinstance(rule, dict):
                out += errors(obj[name], rule, root, f"{path}.{name}")
    elif key == "maxProperties":
        if len(obj) > rule:
            out.append(f"{path}: {len(obj)} properties breaks maxProperties {rule}")
    elif key == "patternProperties":
        for pattern, sub in rule.items():
            out += [e for name in obj if re.search(pattern, name) for e in errors(obj[name], sub, root, f"{path}.{name}")]
    elif key == "propertyNames":
        for name in obj:
            out += errors(name, rule, root, f"{path}<{name}>")
    return out
