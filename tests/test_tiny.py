"""Tiny model folders are published whole and readable like any folder the user makes."""

import os
import stat

import pytest

from layeringdiff.tiny import foreground, layering, sd2, sdxl


def expected_dir_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


@pytest.mark.parametrize(
    "build",
    [
        lambda p: sd2.build(p / "sd2"),
        lambda p: sdxl.build(p / "sdxl"),
        lambda p: foreground.build_sam(p / "sam"),
        lambda p: layering.build({"ban": p / "ban"})["ban"],
    ],
    ids=["sd2", "sdxl", "sam", "hfa"],
)
def test_tiny_folders_have_default_permissions(tmp_path, build):
    folder = build(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == expected_dir_mode()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left"
