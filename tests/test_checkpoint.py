"""Checkpoint helpers that need no learners: the shared-storage check and `rlkit export`'s refusals."""

from __future__ import annotations

import os

from rlkit.checkpoint import check_shared_dir, shared_marker


def test_shared_dir_check_sees_the_drivers_marker(tmp_path):
    marker, token = shared_marker(tmp_path / "ckpts")
    assert os.path.dirname(marker) == str(tmp_path / "ckpts")
    assert check_shared_dir(marker, token) is None


def test_a_rank_on_another_filesystem_is_named(tmp_path):
    marker, token = shared_marker(tmp_path / "ckpts")
    os.unlink(marker)  # what a node without the shared mount sees: no such file
    assert check_shared_dir(marker, token) == f"cannot read {marker}: No such file or directory"
    marker, token = shared_marker(tmp_path / "ckpts")
    assert check_shared_dir(marker, "another run's token") == f"{marker} holds other content"


def test_export_refuses_a_folder_without_shards(tmp_path, capsys):
    from rlkit.cli import main

    assert main(["export", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path}: not a sharded rlkit checkpoint (no dcp/.metadata)" in capsys.readouterr().err
