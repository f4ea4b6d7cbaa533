"""File rules the whole tree shares (spooler.core.fsutil)."""

from __future__ import annotations

from pathlib import Path

from spooler.core.fsutil import exists_in, free_name


def test_a_free_name_is_the_name_itself_then_numbered_before_its_suffix(tmp_path: Path) -> None:
    taken = exists_in(tmp_path)
    assert free_name("job.json", taken) == "job.json"
    (tmp_path / "job.json").write_text("")
    (tmp_path / "job.1.json").write_text("")
    assert free_name("job.json", taken) == "job.2.json"
    assert free_name("job.json", taken, keep_suffix=False) == "job.json.1"


def test_a_dangling_link_and_a_companion_take_a_name(tmp_path: Path) -> None:
    (tmp_path / "item").symlink_to(tmp_path / "nowhere")
    (tmp_path / "item.1.reason.json").write_text("{}")
    taken = exists_in(tmp_path, ".reason.json")
    assert free_name("item", taken, keep_suffix=False) == "item.2"
