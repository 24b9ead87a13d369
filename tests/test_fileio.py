"""Atomic writes: the destination holds either the old content or the complete new one."""

import json

import pytest

from nce_lm.errors import NceLmError
from nce_lm.fileio import atomic_path, read_json, write_json_atomic


def test_failed_write_keeps_previous_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"version": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_successful_write_replaces_content(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_json_atomic(target, {"a": [1, 2]})
    write_json_atomic(target, {"a": [3]})
    assert read_json(target, "test") == {"a": [3]}


def test_read_json_reports_missing_and_corrupted_files_in_one_line(tmp_path):
    with pytest.raises(NceLmError, match="vocabulary file not found"):
        read_json(tmp_path / "nope.json", "vocabulary")
    bad = tmp_path / "bad.json"
    bad.write_text('{"tokens": [')
    with pytest.raises(NceLmError, match="corrupted") as info:
        read_json(bad, "vocabulary")
    assert "\n" not in str(info.value)


def test_json_has_no_nan(tmp_path) -> None:
    import json

    from nce_lm.fileio import write_json_atomic

    write_json_atomic(tmp_path / "m.json", {"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": 2}})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None, "b": [1.5, None], "c": {"d": 2}}
