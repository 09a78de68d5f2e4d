"""make bench-scale: the replicated corpus, the process-tree memory meter, the local portable
runner with 2 SDK workers, and one small end-to-end run on real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.process_tree import measure
from bench.replicate import replicate_data, replicated_entries
from pipeline.catalog import expand_entry, load_catalog
from pipeline.config import PACKAGE_DIR as PIPELINE_DIR


def real_entries() -> list[dict]:
    return yaml.safe_load((PIPELINE_DIR / "catalog.yaml").read_text(encoding="utf-8"))["sources"]


def test_every_source_is_copied_under_a_new_name_and_folder():
    entries = real_entries()
    tripled = replicated_entries(entries, 3)
    assert tripled[: len(entries)] == entries  # the originals come first, unchanged
    names = [e["name"] for e in tripled]
    assert len(tripled) == 3 * len(entries) and len(set(names)) == len(names)
    for k in (2, 3):
        copies = [e for e in tripled if e["name"].endswith(f"__x{k}")]
        assert len(copies) == len(entries)
        for original, copy in zip(entries, copies):
            assert copy["path"] == original["path"].replace("mono/", f"mono_x{k}/", 1)
            assert {**copy, "name": original["name"], "path": original["path"]} == original


def test_replication_refuses_a_bad_factor_and_paths_outside_mono():
    with pytest.raises(ValueError, match="factor must be >= 1"):
        replicated_entries(real_entries(), 0)
    with pytest.raises(ValueError, match="'odd'.*not under mono/"):
        replicated_entries([{"name": "odd", "path": "elsewhere/x.txt"}], 2)


def test_a_replicated_catalog_reads_the_same_files_under_new_names(tmp_path, data_dir):
    data_root, catalog = replicate_data(PIPELINE_DIR / "catalog.yaml", data_dir, 2, tmp_path)
    entries = {e.name: e for e in load_catalog(catalog)}
    original, copy = entries["bible_corpus_swa"], entries["bible_corpus_swa__x2"]
    [original_file], [copy_file] = expand_entry(original, data_root), expand_entry(copy, data_root)
    assert "/mono_x2/" in copy_file and copy_file != original_file
    assert Path(copy_file).read_bytes() == Path(original_file).read_bytes()
    assert replicate_data(PIPELINE_DIR / "catalog.yaml", data_dir, 2, tmp_path) == (data_root, catalog)  # rerun


def test_peak_memory_includes_the_commands_children(tmp_path):
    child = "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    cost = measure([sys.executable, "-c", parent], tmp_path / "log.txt", interval=0.05)
    assert cost["peak_processes"] == 2
    assert cost["peak_rss_mib"] >= 300  # the child's block, counted although the parent holds none
    assert cost["largest_process_peak_mib"]["other"] >= 300 > cost["largest_process_peak_mib"]["launcher"]
    assert cost["seconds"] >= 1.5


def test_a_failed_command_names_its_log(tmp_path):
    with pytest.raises(RuntimeError, match=r"exit code 3; log: .*log\.txt\n.*boom"):
        measure([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path / "log.txt")


def test_settings_that_cannot_measure_growth_are_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench.scale", f"out_dir={tmp_path}", "corpus_scales=[2,4]"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "corpus_scales must be positive and include 1" in result.stderr


@pytest.mark.slow  # about 5 minutes on 2 cores: every runner at two scales; each runner has its own test
def test_small_scaling_run_end_to_end(tmp_path, data_dir):
    # Two small languages at 1x and 2x; the 2x also through the PortableRunner with 2 SDK workers
    # and through the DaskRunner on a local scheduler with 2 worker processes.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale",
            f"data_dir={data_dir}",
            f"out_dir={tmp_path}",
            "langs=[hau,yor]",
            "corpus_scales=[1,2]",
            "portable_scale=2",
            "dask_scales=[2]",
            "tokenizer_chars=[300000,600000]",
            "pretrain_block_lens=[32,64]",
            "pretrain_steps=10",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout)
    saved = json.loads((tmp_path / "scale.json").read_text(encoding="utf-8"))
    assert saved["config"]["langs"] == ["hau", "yor"]  # the config is echoed into the output
    assert {k: v for k, v in saved.items() if k != "config"} == printed
    runs = {(r["scale"], r["runner"]): r for r in printed["corpus"]}
    assert set(runs) == {(1, "direct"), (2, "direct"), (2, "portable"), (2, "dask")}
    assert runs[2, "direct"]["read"] == 2 * runs[1, "direct"]["read"]  # every copy read ...
    assert printed["summary"]["kept_same_at_every_scale"]  # ... and every copy deduplicated away
    # launcher + job service + worker pool + 2 SDK workers
    assert runs[2, "portable"]["peak_processes"] >= 5
    assert set(runs[2, "portable"]["largest_process_peak_mib"]) >= {
        "launcher",
        "job_service",
        "worker_pool",
        "sdk_worker",
    }
    assert "portable_over_direct_time" in printed["summary"]
    assert runs[2, "dask"]["read"] == runs[2, "direct"]["read"] and runs[2, "dask"]["kept_same_as_1x"]
    # launcher + scheduler + nanny + 2 worker processes
    assert set(runs[2, "dask"]["largest_process_peak_mib"]) >= {"launcher", "dask_scheduler", "dask_worker"}
    assert "dask_over_direct_time_2x" in printed["summary"]
    assert [r["char_budget"] for r in printed["tokenizer"]] == [300000, 600000]
    assert all(r["tokens_per_s"] > 0 for r in printed["pretrain"])
    assert (tmp_path / "scale.png").stat().st_size > 10_000
