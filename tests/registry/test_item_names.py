"""The one rule for a fanned-out run's per-item names (registry/names.py): model names, references, file slugs."""

import re

import pytest

from airflow_amml.registry.errors import InvalidValueError
from airflow_amml.registry.names import check_name, item_model_name, item_ref, item_slug

ITEMS = ["nyc_taxi", "nab/realKnownCause/nyc_taxi", "nab-realKnownCause-nyc_taxi", "a b", "a_b", "é", "", 42, 3.5,
         "x" * 500, "x" * 499 + "y", "../../etc", "nab.a"]  # fmt: skip


def test_a_safe_item_is_its_own_slug_and_any_other_gets_a_hash_of_its_text():
    assert item_slug("nyc_taxi") == "nyc_taxi" and item_slug(42) == "42"
    slug = item_slug("nab/realKnownCause/nyc_taxi")
    assert re.fullmatch(r"nab-realKnownCause-nyc_taxi-[0-9a-f]{10}", slug)
    assert item_slug("nab/realKnownCause/nyc_taxi") == slug, "deterministic"


def test_slugs_and_model_names_are_valid_distinct_and_short():
    slugs = [item_slug(i) for i in ITEMS]
    assert len(set(slugs)) == len(ITEMS), "no two items share a slug (nor a file or a model)"
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,60}", s) for s in slugs), "one harmless path segment each"
    names = [item_model_name("nab", i) for i in ITEMS]
    assert all(check_name(n) == n and n.startswith("nab.") for n in names) and len(set(names)) == len(ITEMS)
    long_base = "m" * 89
    assert len(item_model_name(long_base, "x" * 500)) == 100 and check_name(item_model_name(long_base, "b"))


def test_a_reference_keeps_its_alias_or_version():
    taxi = item_model_name("nab", "nab/realKnownCause/nyc_taxi")
    assert item_ref("nab@champion", "nab/realKnownCause/nyc_taxi") == f"{taxi}@champion"
    assert item_ref("nab/3", "b") == "nab.b/3" and item_ref("nab", "b") == "nab.b"


def test_a_base_name_that_leaves_no_room_is_refused_with_a_hint():
    with pytest.raises(InvalidValueError, match="leaves no room") as raised:
        item_model_name("m" * 95, "b")
    assert "89" in raised.value.hint
