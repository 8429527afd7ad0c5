"""JSON Schema checks of API payloads, with a fast path for the common valid case.

A payload is checked by two engines compiled from the same schema:

- fastjsonschema generates Python code for the schema; it answers "valid?" about
  twenty times faster than jsonschema, and most rows of a real file are valid;
- jsonschema (Draft 2020-12, with format checking) runs only when the fast path says
  "invalid", because it can list EVERY error with its path, which the fast engine
  cannot (it stops at the first).

The invariant the rest of the loader relies on: the fast engine passes a payload
exactly when jsonschema finds no error. Three things would break it, and each is
closed here: (1) formats: both engines get the same format functions; (2) regex
end anchors: JSON Schema regexes are ECMA-262, where `$` matches only at the very
end, but Python's `re.search` lets `$` match before a final newline. fastjsonschema
rewrites `$` to `\\Z` in `pattern` only, so the fast engine gets its patternProperties
keys rewritten the same way, and jsonschema's three regex keywords use that reading;
(3) keywords fastjsonschema does not implement (it stops at draft 2019's draft-07
core): a schema that uses one runs on jsonschema alone.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, KeysView, Mapping
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.protocols import Validator

from loader.errors import LoaderError
from loader.resources import load_schema, schema_path

__all__ = ["PayloadValidator", "SchemaError", "is_email", "operation_schema"]

SCHEMA_SUFFIX = ".schema.json"

# --- the payload schemas of a target ------------------------------------------------


def _known(directory: str | None) -> list[str]:
    base = schema_path(directory) if directory else schema_path()
    if directory is None:
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("_"))
    return sorted(p.name.removesuffix(SCHEMA_SUFFIX) for p in base.glob("*" + SCHEMA_SUFFIX))


def operation_schema(target: str, operation: str, *, variant: str | None = None) -> dict[str, Any]:
    """The JSON Schema of one operation's payload: `schemas/<target>/<operation>.schema.json`.

    A schema that lists `x-variants` (iCasework `uploaddata`: customers, accounts, cases)
    holds one row shape per variant in `$defs`; the variant must then be named, and the
    result is that shape as a schema of its own. The result is a copy: callers may change it.
    """
    targets = _known(None)
    if target not in targets:
        raise LoaderError(f"unknown target {target!r}; known targets: {', '.join(targets)}")
    operations = _known(target)
    if operation not in operations:
        raise LoaderError(
            f"unknown {target} operation {operation!r}; known operations: {', '.join(operations)}"
        )
    schema = load_schema(target, operation + SCHEMA_SUFFIX)
    variants: list[str] = schema.get("x-variants", [])
    if not variants:
        if variant is not None:
            raise LoaderError(f"{target} {operation} has no variants (asked for {variant!r})")
        return copy.deepcopy(schema)
    if variant not in variants:
        asked = "no variant given" if variant is None else f"unknown variant {variant!r}"
        raise LoaderError(
            f"{target} {operation} needs a variant ({asked}); choose one of: {', '.join(variants)}"
        )
    shape = copy.deepcopy(schema["$defs"][variant])
    # No $id: the variant is not the file's resource. $defs travel along so that a
    # variant may $ref a shared definition.
    return {
        "$schema": schema["$schema"],
        "title": f"{schema['title']} ({variant})",
        **shape,
        "$defs": copy.deepcopy(schema["$defs"]),
    }


# --- formats, shared by both engines ------------------------------------------------

# The WHATWG (HTML) e-mail grammar, with a dot required in the domain: a council's
# contact address is never `bob@localhost`. jsonschema's own check is only "has an @".
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)


def is_email(value: object) -> bool:
    """True for a plausible e-mail address (non-strings pass: `type` judges those)."""
    if not isinstance(value, str):
        return True
    return len(value) <= 254 and _EMAIL.fullmatch(value) is not None


def _format_checker() -> FormatChecker:
    checker = FormatChecker()  # every format jsonschema can check here...
    checker.checks("email")(is_email)  # ...with our e-mail rule instead of "has an @"
    return checker


_CHECKER = _format_checker()

# The formats fastjsonschema would check on its own (by regex). Each one jsonschema
# cannot check here (e.g. "uri" without rfc3987) is made a pass in the fast engine too,
# so that a format is either checked by both or by neither.
_FAST_BUILTIN_FORMATS = [*fastjsonschema.draft2019.CodeGeneratorDraft2019.FORMAT_REGEXS, "regex"]


def _always(_value: object) -> bool:
    return True


def _conforms(name: str, value: object) -> bool:
    return _CHECKER.conforms(value, name)


def _fast_formats() -> dict[str, Callable[[object], bool]]:
    formats: dict[str, Callable[[object], bool]] = dict.fromkeys(_FAST_BUILTIN_FORMATS, _always)
    formats.update({name: partial(_conforms, name) for name in _CHECKER.checkers})
    formats["email"] = is_email  # the same function jsonschema calls, minus its wrapper
    return formats


# --- jsonschema with ECMA regex anchors and one error per field ---------------------

_DOLLAR = re.compile(r"(?<!\\)\$")  # the same rewrite fastjsonschema applies


@cache
def _ecma(pattern: str) -> re.Pattern[str]:
    return re.compile(_DOLLAR.sub(r"\\Z", pattern))


def _pattern(
    validator: Validator, patrn: str, instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _ecma(patrn).search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(
    validator: Validator, patterns: dict[str, Any], instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for patrn, subschema in patterns.items():
        for key, value in instance.items():
            if _ecma(patrn).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=patrn)


def _additional_properties(
    validator: Validator, extra_schema: Any, instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # One error per unexpected property, with the property as its path, so that each
    # is reported against its own field (jsonschema lumps them into one message).
    if not isinstance(instance, dict):
        return
    known = schema.get("properties", {})
    patterns = [_ecma(p) for p in schema.get("patternProperties", {})]
    extras = [
        key for key in instance if key not in known and not any(p.search(key) for p in patterns)
    ]
    for key in extras:
        if isinstance(extra_schema, dict):
            yield from validator.descend(instance[key], extra_schema, path=key)
        elif extra_schema is False:
            yield ValidationError(f"{key!r} is not allowed", path=[key], instance=instance[key])


def _required(
    validator: Validator, required: list[str], instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # The missing property becomes the error's path: it is the field the error is about.
    if not isinstance(instance, dict):
        return
    for name in required:
        if name not in instance:
            yield ValidationError(f"{name!r} is a required property", path=[name])


_Describer = jsonschema.validators.extend(
    Draft202012Validator,
    validators={
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "required": _required,
    },
)

# Keywords the fast engine does not implement (or reads with draft-07 meaning).
_NOT_FAST = frozenset(
    {
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "prefixItems",
        "additionalItems",
        "unevaluatedItems",
        "unevaluatedProperties",
        "minContains",
        "maxContains",
        "$dynamicRef",
        "$dynamicAnchor",
        "$recursiveRef",
    }
)


def _fast_path_safe(node: object) -> bool:
    """False when the fast engine could read the schema differently from jsonschema.

    Conservative: a property merely named like one of those keywords also turns the
    fast path off, which costs speed, never correctness.
    """
    if isinstance(node, list):
        return all(_fast_path_safe(item) for item in node)
    if not isinstance(node, dict):
        return True
    if _NOT_FAST.intersection(node):
        return False
    if "$ref" in node and set(node) - {"$ref", "$defs", "definitions", "$schema", "$id"} - {
        "title",
        "description",
        "$comment",
    }:
        return False  # draft-07 engines ignore the siblings of $ref; 2020-12 applies them
    if isinstance(node.get("items"), list):
        return False
    return all(_fast_path_safe(value) for value in node.values())


def _ecma_keys(node: Any) -> Any:
    """A copy of the schema with patternProperties keys read the ECMA way (`$` -> `\\Z`).

    fastjsonschema applies that rewrite to `pattern` values but searches
    patternProperties keys with plain `re`; without this a key "Document1.URL\\n"
    would match `^Document[1-9][0-9]*\\.URL$` in one engine and not the other.
    """
    if isinstance(node, list):
        return [_ecma_keys(item) for item in node]
    if not isinstance(node, dict):
        return node
    copied = {key: _ecma_keys(value) for key, value in node.items()}
    patterns = copied.get("patternProperties")
    if isinstance(patterns, dict):
        copied["patternProperties"] = {
            key if key.startswith("$") else _DOLLAR.sub(r"\\Z", key): value
            for key, value in patterns.items()
        }
    return copied


# --- the fast engine specialised to one key set ----------------------------------------
#
# fastjsonschema checks patternProperties by searching every pattern in every payload key
# (createcase: 4 Document patterns x 15 keys = 60 regex searches per payload) and then scans
# a list of the named properties for each remaining key. The payloads of one spec use a
# small set of keys (its field names), so which rule applies to each key is decided once:
# the specialised schema names every key seen so far under `properties`, with the
# subschemas that apply to it (its own property schema, the patternProperties it matches,
# else additionalProperties), and drops patternProperties and additionalProperties. For a
# payload whose keys are all among those it accepts exactly what the general schema
# accepts (an absent property is not checked); a payload with a new key widens the set
# (one compile, a few milliseconds, per new key).

SPECIALISE_AFTER = 8  # payloads seen before the first specialised engine is compiled
_MAX_KEYS = 512  # keys a specialised engine may name; payloads with others use the general one
# Keys spelled into the generated code: a conservative alphabet (field names are dotted
# words), so that no key can change the meaning of the code it is written into.
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.\- ]{1,200}")
_ROOT_KEYWORDS = ("properties", "patternProperties", "additionalProperties")


def _specialisable(schema: dict[str, Any]) -> bool:
    """Whether `_for_keys` may rewrite this (ECMA-keyed, fast-path-safe) schema: some
    object node it would rewrite has key rules, and no `$ref` points into the rules it
    moves (they would no longer be where the reference says)."""
    nodes = _object_nodes(schema)
    if not any(any(k in node for k in _ROOT_KEYWORDS[1:]) for node in nodes):
        return False
    return not any(
        ref.startswith(("#/properties", "#/patternProperties", "#/additionalProperties", "#/allOf"))
        for ref in _refs(schema)
    )


def _object_nodes(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The root and its allOf members: the schema nodes that all apply to the payload itself."""
    nodes = [schema]
    nodes += [n for n in schema.get("allOf", []) if isinstance(n, dict) and "$ref" not in n]
    return nodes


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _refs(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)


def _for_keys(schema: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    out = _resolve_keys(schema, keys)
    if "allOf" in schema:
        out["allOf"] = [
            _resolve_keys(n, keys) if isinstance(n, dict) and "$ref" not in n else n
            for n in schema["allOf"]
        ]
    return out


def _resolve_keys(node: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    if not any(k in node for k in _ROOT_KEYWORDS[1:]):
        return dict(node)
    named: dict[str, Any] = node.get("properties", {})
    patterns = [(re.compile(p), sub) for p, sub in node.get("patternProperties", {}).items()]
    extra = node.get("additionalProperties", True)
    properties = dict(named)  # kept whole: absent names cost one set look-up each
    for key in sorted(keys):
        rules = [named[key]] if key in named else []
        rules += [sub for pattern, sub in patterns if pattern.search(key)]
        if not rules:
            rules = [extra]
        properties[key] = rules[0] if len(rules) == 1 else {"allOf": rules}
    out = {k: v for k, v in node.items() if k not in _ROOT_KEYWORDS}
    out["properties"] = properties
    return out


def _no_remote(uri: str) -> Any:
    raise LoaderError(f"schema refers to {uri}: remote schemas are not fetched")


# --- the validator --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaError:
    """One schema error of one payload, in the words a data owner reads."""

    field: str | None  # the payload field ("Customer.Email"), None for whole-payload errors
    code: str  # the JSON Schema keyword in kebab case: required, type, max-length, any-of...
    message: str  # "Customer.Email: 'bob@' is not a valid email address"
    value: Any  # the offending payload value; None for required and whole-payload errors


class PayloadValidator:
    """Checks payloads against one operation schema (plus a tenant overlay). Compile once."""

    def __init__(self, schema: dict[str, Any], overlay: dict[str, Any] | None = None) -> None:
        combined = dict(schema)
        if overlay is not None:
            _check_schema(overlay, "overlay schema")
            # The overlay joins the base schema's allOf (not the other way round), so the
            # base stays the root resource and its "#/$defs/..." references still resolve.
            combined["allOf"] = [*schema.get("allOf", []), overlay]
        _check_schema(combined, "payload schema")
        self.schema = combined
        self._describer = _Describer(combined, format_checker=_CHECKER)
        self._fast: Callable[[Any], Any] | None = None
        # The fast engine specialised to the keys in `_known` (see `_widen`); the general
        # one until then. `_seen` collects the keys of the payloads seen before the first.
        self._known: frozenset[str] = frozenset()
        self._keyed: Callable[[Any], Any] | None = None
        self._seen: set[str] = set()
        self._payloads = 0
        self._specialisable = False
        self._fast_schema: dict[str, Any] = {}
        if _fast_path_safe(combined):
            self._fast_schema = _ecma_keys(combined)
            self._fast = self._compile(self._fast_schema)
            self._specialisable = _specialisable(self._fast_schema)

    @property
    def fast(self) -> bool:
        """Whether valid payloads take the fast path."""
        return self._fast is not None

    def is_valid(self, payload: Mapping[str, Any]) -> bool:
        return not self.errors(payload)

    def errors(self, payload: Mapping[str, Any]) -> list[SchemaError]:
        """[] when the payload is valid; otherwise every error, each against its field."""
        data = _as_dict(payload)
        if self.fast_valid(data):
            return []
        return self.full_errors(data)

    def fast_valid(self, payload: Mapping[str, Any]) -> bool | None:
        """The fast engine's verdict alone; None when this schema has no fast path."""
        if self._fast is None:
            return None
        data = _as_dict(payload)
        check = self._fast
        if self._specialisable and data.__class__ is dict:
            keys, keyed = data.keys(), self._keyed
            check = keyed if keyed is not None and keys <= self._known else self._widen(keys)
        try:
            check(data)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def _compile(self, schema: dict[str, Any]) -> Callable[[Any], Any]:
        try:
            return fastjsonschema.compile(
                schema,
                handlers={"http": _no_remote, "https": _no_remote},
                formats=_fast_formats(),
                use_default=False,  # validation must never write defaults into payloads
                detailed_exceptions=False,
            )
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            raise LoaderError(f"payload schema cannot be compiled: {exc}") from exc

    def _widen(self, keys: KeysView[str]) -> Callable[[Any], Any]:
        """The fast engine for a payload with keys the specialised engine does not name:
        a specialised engine naming them too, or the general one while too few payloads
        have been seen to pay for a compile, or for keys unfit to be written into code."""
        assert self._fast is not None  # only called on the fast path
        new = keys - self._known
        if len(self._known) + len(new) > _MAX_KEYS or not all(_SAFE_KEY.fullmatch(k) for k in new):
            return self._fast
        self._seen |= new
        self._payloads += 1
        if self._keyed is None and self._payloads < SPECIALISE_AFTER:
            return self._fast
        self._known = frozenset(self._known | self._seen)
        self._seen = set()
        self._keyed = self._compile(_for_keys(self._fast_schema, self._known))
        return self._keyed

    def full_errors(self, payload: Mapping[str, Any]) -> list[SchemaError]:
        """Every error jsonschema finds, with no fast path: [] means valid."""
        data = _as_dict(payload)
        found: list[SchemaError] = []
        seen: set[tuple[str | None, str, str]] = set()
        for error in self._describer.iter_errors(data):
            described = describe(error)
            key = (described.field, described.code, described.message)
            if key not in seen:  # base and overlay may both require the same field
                seen.add(key)
                found.append(described)
        return found


def _as_dict(payload: Any) -> Any:
    # Both engines check "object" with isinstance(dict); any other Mapping is copied so
    # that it is judged by its content. A non-mapping is passed on to fail `type`.
    if isinstance(payload, Mapping) and not isinstance(payload, dict):
        return dict(payload)
    return payload


def _check_schema(schema: dict[str, Any], what: str) -> None:
    try:
        Draft202012Validator.check_schema(schema, format_checker=_CHECKER)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise LoaderError(f"{what} is not a valid JSON Schema at {where}: {exc.message}") from exc


# --- messages -------------------------------------------------------------------------

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true/false",
    "object": "an object",
    "array": "a list",
    "null": "empty (null)",
}
_FORMAT_WORDS = {"email": "email address", "uri": "URI", "date": "date", "date-time": "date-time"}
_LIMIT_WORDS = {
    "maximum": "more than",
    "minimum": "less than",
    "exclusiveMaximum": "not less than",
    "exclusiveMinimum": "not more than",
}


def _kebab(keyword: str) -> str:
    return re.sub(r"(?<=[a-z])([A-Z])", r"-\1", keyword).lower()


def _show(value: Any) -> str:
    """A value as a message quotes it: strings in quotes and cut short, JSON words else."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _plain(item: Any) -> str:
    return item if isinstance(item, str) else _show(item)


def _or_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def describe(error: ValidationError) -> SchemaError:
    """Turn one jsonschema error into a SchemaError against the payload field it concerns."""
    keyword = str(error.validator)
    expected: Any = error.validator_value
    path = list(error.absolute_path)
    field = ".".join(str(p) for p in path) if path else None
    value = error.instance if path and keyword != "required" else None
    about = f"{field}: " if field else ""
    shown = _show(error.instance)
    code = _kebab(keyword)
    message: str
    if keyword == "required":
        message = f"{field} is required"
    elif keyword == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        message = f"{about}{shown} is not {_or_list([_TYPE_WORDS.get(t, t) for t in types])}"
    elif keyword == "enum":
        message = f"{about}{shown} is not one of {', '.join(_plain(v) for v in expected)}"
    elif keyword == "const":
        message = f"{about}{shown} should be {_plain(expected)}"
    elif keyword == "format":
        message = f"{about}{shown} is not a valid {_FORMAT_WORDS.get(expected, expected)}"
    elif keyword == "pattern":
        hint = error.schema.get("x-expected") if isinstance(error.schema, dict) else None
        message = (
            f"{about}{shown} should be {hint}"
            if hint
            else f"{about}{shown} does not match the pattern {expected}"
        )
    elif keyword in ("maxLength", "minLength") and isinstance(error.instance, str):
        size = len(error.instance)
        if keyword == "minLength" and expected == 1:
            message = f"{about}must not be empty"
        else:
            limit = "at most" if keyword == "maxLength" else "at least"
            message = f"{about}{shown} is {size} characters long; {limit} {expected} allowed"
    elif keyword in _LIMIT_WORDS:
        message = f"{about}{shown} is {_LIMIT_WORDS[keyword]} {_plain(expected)}"
    elif keyword == "additionalProperties":
        message = f"{field} is not a field this operation accepts"
    elif keyword in ("anyOf", "oneOf"):
        message = _alternatives(error, about)
    elif keyword == "not":
        message = f"{about}{shown} is not allowed here"
    else:
        message = f"{about}{error.message}"
    return SchemaError(field=field, code=code, message=message, value=value)


def _alternatives(error: ValidationError, about: str) -> str:
    branches: list[Any] = error.validator_value
    names = [
        b["required"][0]
        for b in branches
        if isinstance(b, dict) and set(b) == {"required"} and len(b["required"]) == 1
    ]
    if error.validator == "anyOf" and len(names) == len(branches):
        return f"{about}{_or_list(names)} is required"
    if error.validator == "oneOf" and not error.context:
        return f"{about}matches more than one of the allowed forms"
    by_branch: dict[int, list[str]] = {}
    for sub in error.context or []:
        index = int(sub.relative_schema_path[0])
        by_branch.setdefault(index, []).append(describe(sub).message)
    reasons = "; or ".join(", ".join(msgs) for _, msgs in sorted(by_branch.items()))
    return f"{about}matches none of the allowed forms ({reasons})"
