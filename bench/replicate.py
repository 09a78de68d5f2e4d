"""An N-times larger corpus for the scaling benchmark, without copying a byte.

Copy k (2..N) of every catalog entry gets the name `<name>__x<k>` and reads its file through
`mono_x<k>/`, a symlink to the real `mono/` folder. Every stage therefore reads, parses,
normalises, filters and hashes N times the text, and exact dedup must find and drop the copies:
a correct run keeps the same lines at every N.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from common.io import atomic_write


def replicated_entries(entries: list[dict], factor: int) -> list[dict]:
    """The entries, then factor-1 renamed copies reading through mono_x<k>/."""
    if factor < 1:
        raise ValueError(f"replication factor must be >= 1, got {factor}")
    copies = []
    for k in range(2, factor + 1):
        for entry in entries:
            folder, _, rest = entry["path"].partition("/")
            if folder != "mono":
                raise ValueError(f"catalog entry {entry['name']!r}: path {entry['path']!r} is not under mono/")
            copies.append({**entry, "name": f"{entry['name']}__x{k}", "path": f"mono_x{k}/{rest}"})
    return [*entries, *copies]


def replicate_data(catalog: Path, data_dir: Path, factor: int, out_dir: Path) -> tuple[Path, Path]:
    """Write `<out_dir>/data` (symlinks) and `<out_dir>/catalog.yaml`; return both paths."""
    with open(catalog, encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    root = out_dir / "data"
    root.mkdir(parents=True, exist_ok=True)
    real_mono = (Path(data_dir) / "mono").resolve()
    for name in ["mono", *(f"mono_x{k}" for k in range(2, factor + 1))]:
        link = root / name
        if not link.is_symlink():
            os.symlink(real_mono, link, target_is_directory=True)
    # Evaluation sets are found under data_dir/eval: the same ones, once, for decontamination.
    real_eval, eval_link = Path(data_dir) / "eval", root / "eval"
    if real_eval.is_dir() and not eval_link.is_symlink():
        os.symlink(real_eval.resolve(), eval_link, target_is_directory=True)
    out_catalog = out_dir / "catalog.yaml"
    with atomic_write(out_catalog) as handle:
        yaml.safe_dump(
            {**doc, "sources": replicated_entries(doc["sources"], factor)}, handle, allow_unicode=True, sort_keys=False
        )
    return root, out_catalog
