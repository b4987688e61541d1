"""What the registry accepts as names and references; every entry point (CLI, API, components) goes through here.

    model name, alias, tag key, metric name   NAME_PATTERN: 1-100 of `A-Z a-z 0-9 _ . -`, not starting with
                                              `.` or `-`, never `..`  (`ett`, `ett_delta`, `champion`, `v1.2`)
    definition version                        VERSION_PATTERN: 1-64 of `A-Z a-z 0-9 _ . + -`, starting with a
                                              letter or digit  (`0.1`, `2024-07`)
    version number                            1 to 2147483647

References use the characters names cannot contain: `ett:0.1` is a definition (name `:` version), `ett/3` a
version, `ett@champion` an alias, `ett` the latest version. Model names become folder names in the artifact
store, so the pattern also keeps every name a single, harmless path segment.

A fanned-out pipeline (`pipeline p for series in ...`) keeps one model per item: :func:`item_model_name` is the
one rule (`nab` for item `nab/realKnownCause/nyc_taxi` → `nab.nab-realKnownCause-nyc_taxi-ffd6fbb8d6`), and
:func:`item_slug` also names the item's output files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from .errors import InvalidValueError

NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"
VERSION_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"
MAX_VERSION_NUMBER = 2**31 - 1  # the column is a 32-bit integer on every database
_NAME_RE = re.compile(NAME_PATTERN)
_VERSION_RE = re.compile(VERSION_PATTERN)
_NUMBER_RE = re.compile(r"[0-9]{1,10}")  # str.isdigit() also accepts '²' and other scripts' digits
_REF_HINT = "write `ett` (latest), `ett/3` (version 3) or `ett@champion` (an alias)"
_SHOWN = 60  # characters of a bad value quoted back in a message
_UNSAFE_IN_SLUG = re.compile(r"[^A-Za-z0-9_-]")
MAX_SLUG_CHARS = 60  # an item's part of a model or file name (a catalog id can be long; the name has 100)
SLUG_HASH_CHARS = 10  # hex digits of sha256: 40 bits, so two items of one run never meet by chance


def shown(value: object) -> str:
    """`repr` of a user value, cut short: a 5,000-character alias should not fill the screen."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}…({len(str(value))} characters)"


def check_name(value: object, what: str = "model name") -> str:
    """`value` if it is a valid name (see NAME_PATTERN), else an InvalidValueError that suggests one."""
    if isinstance(value, str) and _NAME_RE.fullmatch(value) and ".." not in value:
        return value
    raise InvalidValueError(
        f"{what} {shown(value)} is not valid: expected 1 to 100 letters, digits, `_`, `.` or `-`, not starting "
        f"with `.` or `-` and without `..` (pattern {NAME_PATTERN})",
        hint=_suggest_name(value),
    )


def check_alias(value: object) -> str:
    return check_name(value, "alias")


def check_definition_version(value: object) -> str:
    if isinstance(value, str) and _VERSION_RE.fullmatch(value):
        return value
    raise InvalidValueError(
        f"definition version {shown(value)} is not valid: expected 1 to 64 letters, digits, `_`, `.`, `+` or `-`, "
        f"starting with a letter or digit (pattern {VERSION_PATTERN})",
        hint='write it like "0.1" or "2024-07"',
    )


def check_version_number(value: object, ref: object = None) -> int:
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_VERSION_NUMBER:
        return value
    raise InvalidValueError(
        f"version number {shown(value)}{f' in {shown(ref)}' if ref is not None else ''} is not valid: versions "
        f"are whole numbers from 1 to {MAX_VERSION_NUMBER}",
        hint=_REF_HINT,
    )


def parse_ref(ref: object) -> tuple[str, str, str | int | None]:
    """`ett` → (ett, latest, None), `ett@champion` → (ett, alias, champion), `ett/3` → (ett, version, 3)."""
    if not isinstance(ref, str):
        raise InvalidValueError(f"model reference {shown(ref)} is not a string", hint=_REF_HINT)
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return _ref_part(check_name, name, ref), "alias", _ref_part(check_alias, alias, ref)
    if "/" in ref:
        name, number = ref.rsplit("/", 1)
        return _ref_part(check_name, name, ref), "version", check_version_number(number, ref)
    return _ref_part(check_name, ref, ref), "latest", None


def parse_definition_ref(ref: object) -> tuple[str, str]:
    """`ett:0.1` → (ett, 0.1)."""
    if not isinstance(ref, str) or ":" not in ref:
        raise InvalidValueError(
            f"model definition {shown(ref)} is not valid: expected NAME:VERSION", hint="write it like `ett:0.1`"
        )
    name, _, version = ref.partition(":")
    return check_name(name, "definition name"), check_definition_version(version)


def item_slug(value: object, limit: int = MAX_SLUG_CHARS) -> str:
    """An item (a fan-out's series id, a string or number) as a name part of `A-Z a-z 0-9 _ -` only.

    Deterministic (the same item gives the same slug on every worker and every run) and collision-resistant:
    an item kept as it is (`nyc_taxi`, `42`) is its own slug, and one whose characters had to change or that
    was cut to ``limit`` gets a hash of its full text (`nab/a` → `nab-a-<hash>`, never the slug of `nab-a`).
    """
    text = str(value)
    slug = _UNSAFE_IN_SLUG.sub("-", text)
    if slug == text and 0 < len(slug) <= limit:
        return slug
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:SLUG_HASH_CHARS]
    kept = slug[: max(limit - SLUG_HASH_CHARS - 1, 0)]
    return f"{kept}-{digest}" if kept else digest


def item_model_name(name: str, value: object) -> str:
    """The model a fanned-out run keeps for one item: `<name>.<slug of the item>`, within the 100 characters of a
    name (a long base name leaves the slug less room; the hash keeps it apart from its neighbours)."""
    check_name(name)
    room = 100 - len(name) - 1
    if room < SLUG_HASH_CHARS:
        raise InvalidValueError(
            f"model name {shown(name)} leaves no room for the item's part ({len(name)} of 100 characters)",
            hint="use a model name of at most 89 characters in a fanned-out pipeline",
        )
    return check_name(f"{name}.{item_slug(value, min(room, MAX_SLUG_CHARS))}")


def item_ref(ref: object, value: object) -> str:
    """A model reference as a fanned-out run reads it for one item: `nab@champion` → `nab.<slug>@champion`
    (and `nab/3`, `nab` likewise; the alias or version is kept)."""
    name, kind, which = parse_ref(ref)
    item_name = item_model_name(name, value)
    if kind == "alias":
        return f"{item_name}@{which}"
    if kind == "version":
        return f"{item_name}/{which}"
    return item_name


def _ref_part(check: Callable[[object], str], value: str, ref: str) -> str:
    try:
        return check(value)
    except InvalidValueError as exc:
        exc.message = f"model reference {shown(ref)}: {exc.message}"
        exc.hint = f"{exc.hint}; {_REF_HINT}" if exc.hint else _REF_HINT
        raise


def _suggest_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "use a name such as `ett` or `ett_delta`"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", value.replace("..", "")).strip("._-")[:100]
    if cleaned and _NAME_RE.fullmatch(cleaned):
        return f"use `{cleaned}` instead"
    return "use a name such as `ett` or `ett_delta`"
