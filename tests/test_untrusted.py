"""The one reader of JSON (and zip archives) from outside: bounded depth, bounded size, one reason."""

from __future__ import annotations

import json
import re

import pytest

from edgesr.untrusted import MAX_JSON_DEPTH, check_archive, nesting, read_json
from tests.forged import deep_json, zip_bomb_checkpoint


@pytest.mark.parametrize("text, reason", [
    (deep_json(100_000), "nested deeper than 32 levels"),  # json.loads: RecursionError
    (deep_json(MAX_JSON_DEPTH + 1), "nested deeper than 32 levels"),  # loads fine, walks break later
    ('{"a": ' * 40 + "1" + "}" * 40, "nested deeper than 32 levels"),
    ("9" * 5000, "not JSON (a number too long)"),  # int() refuses more than 4300 digits
    (b"\xff\xfe{", "not UTF-8 text"),
    ("{]", "not JSON (Expecting property name"),
])
def test_hostile_json_is_one_value_error(text, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        read_json(text)


def test_json_up_to_the_limit_reads_as_json_loads_does():
    text = deep_json(MAX_JSON_DEPTH)
    assert read_json(text) == json.loads(text)
    assert read_json('{"Set5": {"2": 37.6}}') == {"Set5": {"2": 37.6}}
    assert nesting(1) == 0 and nesting([]) == 1 and nesting({"a": [1, {"b": []}]}) == 4


def test_an_archive_declaring_more_than_it_holds_is_refused(tmp_path):
    data = zip_bomb_checkpoint(tmp_path / "z.pt").read_bytes()
    assert len(data) < 300
    with pytest.raises(ValueError, match="archive declares 4294967295 bytes"):
        check_archive(data)
    check_archive(data, limit=1 << 32)  # the bound is the only reason
    with pytest.raises(ValueError, match="not a readable zip archive"):
        check_archive(b"PK\x03\x04 not really")
