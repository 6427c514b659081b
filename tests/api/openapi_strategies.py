"""Hypothesis strategies from the OpenAPI document, and a small validator of responses against it.

What schemathesis would do, in the few lines this API needs: values that fit each schema, mixed
with values that do not (any JSON, any text, any bytes), so both the happy paths and validation
are exercised; and a check that what comes back is what the document promises.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
# Lone surrogates, NUL and controls included: they must be refused with a 400, never reach SQL.
NASTY_TEXT = st.text(max_size=20)
JSON_SCALARS = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | NASTY_TEXT
ANY_JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=10)
# What breaks databases, logs and parsers: NUL, controls, lone surrogates, quotes, huge escapes.
TRICKY_STRINGS = ["\x00", "a\x00b", "\ud800", "\udfff", "\n", "\r\n", "'; --", '"', "\\", "%00", "🙂", "\u202e", " ", "sk_test_" + "A" * 44]
OFFSETS = st.sampled_from([timezone.utc, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)), None])


class Document:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        for _ in range(20):
            if "$ref" not in schema:
                return schema
            kind, name = schema["$ref"].split("/")[-2:]
            schema = self.document["components"][kind][name]
        raise AssertionError("$ref chain too deep")

    # ------------------------------------------------------------------ generation
    def values(self, schema: dict[str, Any], *, depth: int = 0) -> st.SearchStrategy[Any]:
        """Values that fit `schema` (mostly)."""
        schema = self.resolve(schema)
        if depth > 6:
            return st.none()
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema:
                return st.one_of([self.values(option, depth=depth + 1) for option in schema[combinator]])
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.values(schema["allOf"][0], depth=depth + 1)
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "const" in schema:
            return st.just(schema["const"])
        kind = schema.get("type")
        if kind == "string":
            length_max = min(schema.get("maxLength", 60), 80)
            if "pattern" in schema:
                return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda value: len(value) <= schema.get("maxLength", 10**6))
            if schema.get("format") == "date-time":
                moments = st.datetimes() | st.sampled_from([datetime.min, datetime.max])
                return st.builds(lambda moment, offset: moment.replace(tzinfo=offset).isoformat(), moments, OFFSETS)
            length_min = schema.get("minLength", 0)
            plain = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=length_min, max_size=length_max)
            tricky = st.sampled_from(TRICKY_STRINGS).filter(lambda value: length_min <= len(value) <= length_max)
            return st.one_of(plain, tricky, st.builds(lambda a, b: a + b, plain, tricky))
        if kind == "integer":
            low = int(schema.get("minimum", schema.get("exclusiveMinimum", -(2**64))))
            high = int(schema.get("maximum", schema.get("exclusiveMaximum", 2**64)))
            edges = st.sampled_from([value for value in (low, high, low - 1, high + 1) if isinstance(value, int)])
            return st.integers(min_value=low, max_value=high) | edges
        if kind == "number":
            return st.floats(allow_nan=False, allow_infinity=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "array":
            items = self.values(schema.get("items", {}), depth=depth + 1)
            return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
        if kind == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            required = set(schema.get("required", []))
            return st.fixed_dictionaries(
                {name: self.values(sub, depth=depth + 1) for name, sub in properties.items() if name in required},
                optional={name: self.values(sub, depth=depth + 1) for name, sub in properties.items() if name not in required},
            )
        return ANY_JSON

    def values_or_junk(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        return st.one_of(*[self.values(schema)] * 5, ANY_JSON)

    # ------------------------------------------------------------------ validation
    def check(self, value: Any, schema: dict[str, Any], *, where: str = "$") -> None:
        """Raise AssertionError if `value` does not fit `schema` (the subset FastAPI emits)."""
        schema = self.resolve(schema)
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema:
                failures = []
                for option in schema[combinator]:
                    try:
                        self.check(value, option, where=where)
                        return
                    except AssertionError as failure:
                        failures.append(str(failure))
                raise AssertionError(f"{where}: fits no option: {failures}")
        if "enum" in schema:
            assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
        if "const" in schema:
            assert value == schema["const"], f"{where}: {value!r} != {schema['const']!r}"
        kind = schema.get("type")
        checks = {
            "string": lambda: isinstance(value, str),
            "integer": lambda: isinstance(value, int) and not isinstance(value, bool),
            "number": lambda: isinstance(value, (int, float)) and not isinstance(value, bool),
            "boolean": lambda: isinstance(value, bool),
            "null": lambda: value is None,
            "array": lambda: isinstance(value, list),
            "object": lambda: isinstance(value, dict),
        }
        if kind is not None:
            assert checks[kind](), f"{where}: {value!r} is not {kind}"
        if kind == "string":
            if "pattern" in schema:
                assert re.search(schema["pattern"], value), f"{where}: {value!r} !~ {schema['pattern']}"
            if schema.get("format") == "date-time":
                datetime.fromisoformat(value.replace("Z", "+00:00"))
        if kind == "array":
            for index, item in enumerate(value):
                self.check(item, schema.get("items", {}), where=f"{where}[{index}]")
        if kind == "object" or "properties" in schema:
            for name in schema.get("required", []):
                assert name in value, f"{where}: missing {name}"
            for name, item in value.items():
                if name in schema.get("properties", {}):
                    self.check(item, schema["properties"][name], where=f"{where}.{name}")
                elif isinstance(schema.get("additionalProperties"), dict):
                    self.check(item, schema["additionalProperties"], where=f"{where}.{name}")
                elif schema.get("additionalProperties") is False:
                    raise AssertionError(f"{where}: unexpected {name}")
