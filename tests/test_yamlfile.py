"""Reading YAML: positions, YAML 1.1 surprises, duplicates, aliases, encodings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbook.errors import BadInput
from playbook.yamlfile import dump_yaml, load_yaml, parse_yaml


def test_plain_scalars_keep_their_written_meaning() -> None:
    """`no`, `on`, `1:30` and `0x1f` stay text; only true/false/null and decimals are typed."""
    doc = parse_yaml("a: no\non: yes\nc: 1:30\nd: 0x1f\ne: true\nf: null\ng: 12\nh: 1.5\n", "t")
    assert doc.data == {"a": "no", "on": "yes", "c": "1:30", "d": "0x1f", "e": True,
                        "f": None, "g": 12, "h": 1.5}


def test_quoted_values_are_always_text() -> None:
    """Quoting is the way to write a number-looking string."""
    assert parse_yaml('a: "010"\nb: \'true\'\nc: !!str 12\n', "t").data == {
        "a": "010", "b": "true", "c": "12"}


def test_positions_are_recorded_for_keys_and_values() -> None:
    """Every value and key has a 1-based line and column."""
    doc = parse_yaml("id: x\nsteps:\n  - id: a\n    at: 5m\n", "t")
    assert doc.locate(("steps", 0, "at")) == (4, 9)
    assert doc.locate(("steps", 0, "at"), key=True) == (4, 5)
    assert doc.locate(("steps", 0, "missing")) == (3, 5)


def test_every_duplicate_key_is_reported() -> None:
    """Two duplicated keys give two problems, each naming the first occurrence."""
    with pytest.raises(BadInput) as caught:
        parse_yaml("a: 1\nb: 2\na: 3\nb: 4\n", "t")
    assert [str(p) for p in caught.value.problems] == [
        "t:3:1: duplicate key `a` (first at line 1) — remove one of them",
        "t:4:1: duplicate key `b` (first at line 2) — remove one of them",
    ]


def test_alias_bomb_is_refused_before_expansion() -> None:
    """A billion-laughs document is refused at its first anchor, without expanding it."""
    levels = ["a: &a [" + ",".join(['"lol"'] * 9) + "]"]
    for prev, name in zip("abcdefghijklmnopqrstuvwxy", "bcdefghijklmnopqrstuvwxyz", strict=False):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(BadInput, match="anchors and aliases are not allowed"):
        parse_yaml("\n".join(levels), "bomb")


def test_deep_nesting_is_refused() -> None:
    """A deeply nested document cannot exhaust the stack."""
    with pytest.raises(BadInput, match="nested deeper than"):
        parse_yaml("a: " + "[" * 500 + "]" * 500, "deep")


def test_bom_is_accepted(tmp_path: Path) -> None:
    """Files saved with a UTF-8 byte-order mark (Windows editors) load normally."""
    path = tmp_path / "x.yaml"
    path.write_bytes(b"\xef\xbb\xbfid: x\n")
    assert load_yaml(path).data == {"id": "x"}


def test_oversize_file_is_refused(tmp_path: Path) -> None:
    """A file over the size limit is refused before parsing."""
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * 1_100_000)
    with pytest.raises(BadInput, match="over the 1,000,000 limit"):
        load_yaml(path)


def test_missing_file_and_directory_are_bad_input(tmp_path: Path) -> None:
    """Paths that are not files give a clear error, not an OSError."""
    with pytest.raises(BadInput, match="no such file"):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(BadInput, match="is a directory"):
        load_yaml(tmp_path)


@given(st.dictionaries(st.text(min_size=1), st.one_of(
    st.text(), st.lists(st.text()), st.booleans(), st.integers(), st.none())))
@settings(max_examples=300)
def test_dumped_values_read_back_the_same(data: dict[str, object]) -> None:
    """`dump_yaml` quotes whatever would read back as another type or another text."""
    assert parse_yaml(dump_yaml({"entries": [data]}), "dumped").data == {"entries": [data]}


def test_number_like_text_is_quoted_when_dumped() -> None:
    """A Telegram chat id stays text: `"6001"` is written quoted, not as the number 6001."""
    text = dump_yaml({"telegram_chat_id": "6001", "email": "a@b.example", "on": "no"})
    assert "'6001'" in text
    assert parse_yaml(text, "t").data == {"telegram_chat_id": "6001", "email": "a@b.example",
                                          "on": "no"}


def test_a_folded_text_has_no_line_join_marks() -> None:
    """A `>` text reads as plain words joined by spaces, with no control characters left in."""
    document = parse_yaml("text: >-\n  first line\n  second line\n\n  new paragraph\n", "f.yaml")
    assert document.data["text"] == "first line second line\nnew paragraph"
