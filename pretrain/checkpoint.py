"""Atomic, verifiable checkpoints: `<out_dir>/checkpoints/step-NNNNNNN/`.

A checkpoint is written into a hidden temp folder, every file fsynced, then `COMPLETE` (the
sha256 of every other file) is written last and the folder renamed into place. On restart the
newest folder whose `COMPLETE` matches its files is used; a folder without it (killed while
saving) or with a mismatching file (corrupted on disk) is skipped with a warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch

COMPLETE = "COMPLETE"
NAME = re.compile(r"^step-(\d{7,})$")


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (disk full, write error) or read."""


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def _write_file(path: Path, data: bytes) -> None:
    """Write and fsync one file (the single place checkpoint bytes reach the disk)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_checkpoint(root: Path, step: int, files: dict[str, bytes]) -> Path:
    """Write `files` (name -> bytes) as checkpoint `step`; returns its folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    if final.exists():
        if verify(final) is None:
            return final  # same step saved already (e.g. SIGTERM right after a periodic save)
        shutil.rmtree(final)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{checkpoint_name(step)}."))
    try:
        sums = {}
        for name, data in files.items():
            _write_file(tmp / name, data)
            sums[name] = hashlib.sha256(data).hexdigest()
        _write_file(tmp / COMPLETE, json.dumps({"step": step, "sha256": sums}, indent=1).encode())
        _fsync_dir(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp's folders are private
        os.replace(tmp, final)
        _fsync_dir(root)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"could not save checkpoint {final}: {err.strerror or err}; nothing was marked complete, "
            f"earlier checkpoints in {root} are intact"
        ) from err
    return final


def verify(folder: Path) -> str | None:
    """None when `folder` is a complete, intact checkpoint, else the reason it is not."""
    marker = Path(folder) / COMPLETE
    if not marker.exists():
        return "no COMPLETE marker (interrupted while saving)"
    try:
        sums = json.loads(marker.read_text())["sha256"]
    except (OSError, ValueError, KeyError) as err:
        return f"unreadable COMPLETE marker ({err})"
    for name, digest in sums.items():
        path = Path(folder) / name
        if not path.exists():
            return f"{name} is missing"
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            return f"{name} does not match its checksum"
    return None


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint folder, newest first (complete or not)."""
    if not Path(root).exists():
        return []
    found = [(int(m.group(1)), p) for p in Path(root).iterdir() if (m := NAME.match(p.name)) and p.is_dir()]
    return sorted(found, reverse=True)


def find_latest(root: Path, warn: Callable[[str], None] = print) -> Path | None:
    """The newest complete, intact checkpoint; warns about each newer one it skips."""
    for _, folder in list_checkpoints(root):
        problem = verify(folder)
        if problem is None:
            return folder
        warn(f"[checkpoint] skipping {folder}: {problem}; falling back to an older checkpoint")
    return None


def prune(root: Path, keep: int, newest: Path) -> list[Path]:
    """Delete complete checkpoints beyond the newest `keep`, and leftovers of killed saves.

    `newest` is the checkpoint just written and verified; it and the `keep - 1` newer-than-rest
    complete ones stay, so the only complete checkpoint is never deleted.
    """
    removed = []
    complete = [p for _, p in list_checkpoints(root) if (p / COMPLETE).exists()]
    kept = [newest] + [p for p in complete if p != newest][: max(0, keep - 1)]
    for _, folder in list_checkpoints(root):
        if folder not in kept:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    for tmp in Path(root).glob(".tmp-step-*"):
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    return removed


def read_torch(folder: Path, name: str):
    return torch.load(Path(folder) / name, map_location="cpu", weights_only=False)
