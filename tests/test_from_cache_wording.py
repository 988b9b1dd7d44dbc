"""A cache hit says "from cache" (the summary, the tab's details), never "dis on cache"."""
from __future__ import annotations

from types import SimpleNamespace

from videogen import make_video
from wan2gp_structure_video.cli import main


def test_cache_hit_summary_says_from_cache(tmp_path, capsys) -> None:
    source = make_video(tmp_path / "in.mp4", 96, 64, frames=10)
    args = ["guide", str(source), "--frames", "5", "--resolution", "96x64", "--backend", "dis", "--quiet",
            "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "a.mp4")]) == 0
    first = capsys.readouterr().out
    assert "backend dis on cpu" in first
    assert main([*args, "--out", str(tmp_path / "b.mp4")]) == 0
    second = capsys.readouterr().out
    assert "on cache" not in second and "backend dis," in second and "from cache" in second, second


def test_tab_details_say_from_cache() -> None:
    import pytest

    pytest.importorskip("gradio")
    from wan2gp_structure_video.ui.extract_panel import _where

    assert _where(SimpleNamespace(device="cache")) == ", from cache"
    assert _where(SimpleNamespace(device="cuda:0")) == " on `cuda:0`"
