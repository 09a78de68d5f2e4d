"""The corpus stage reading from and writing to real S3-compatible storage (moto on loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline import catalog
from pipeline.run import run
from bench.s3_server import S3Server, download_tree, upload_tree

pytest.importorskip("moto", reason="the S3 tests need moto (pip install 'moto[server]')")
pytest.importorskip("boto3", reason="Beam's S3 filesystem needs boto3 (apache-beam[aws])")

SOURCES = ["kikuyu_genesis_kik", "yoruba_proverbs_yor", "za_news_titles_ssw"]  # small, three formats
BUCKET = "corpus"
SETTINGS = [f"sources=[{', '.join(SOURCES)}]", "decontam.sets=[yosm]", "minhash.enabled=false"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory, data_dir):
    server = S3Server(tmp_path_factory.mktemp("moto"))
    try:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        entries = {e.name: e for e in catalog.load_catalog(catalog.DEFAULT_CATALOG, data_dir)}
        files = sorted({Path(p) for name in SOURCES for p in catalog.expand_entry(entries[name], str(data_dir))})
        files += sorted((data_dir / "eval" / "yosm").glob("*.tsv"))
        upload_tree(client, BUCKET, data_dir, files, "data")
        client.upload_file(str(catalog.DEFAULT_CATALOG), BUCKET, "catalog.yaml")  # the catalog too
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def local_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "corpus"
    return run([f"data_dir={data_dir}", f"out_dir={out}", *SETTINGS]), out


def _local_outputs(out) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_corpus_on_s3_equals_local_run(s3, local_run):
    local_manifest, local = local_run
    remote_args = [
        f"data_dir=s3://{BUCKET}/data",
        f"out_dir=s3://{BUCKET}/out",
        f"catalog=s3://{BUCKET}/catalog.yaml",
        *SETTINGS,
        *s3.beam_flags(),
    ]
    remote_manifest = run(remote_args)
    remote = download_tree(s3.client(), BUCKET, "out")
    expected = _local_outputs(local)
    assert sorted(remote) == sorted(expected)
    for name, body in expected.items():
        if name not in ("manifest.json", "config.yaml"):  # these name where things are
            assert remote[name] == body, name
    differ = {
        k for k, v in yaml.safe_load(remote["config.yaml"]).items() if yaml.safe_load(expected["config.yaml"])[k] != v
    }
    assert differ == {"data_dir", "out_dir", "catalog"}
    assert remote_manifest["corpus_hash"] == local_manifest["corpus_hash"]
    assert remote_manifest["inputs"] == local_manifest["inputs"]  # data hashed by path below data_dir
    assert json.loads(remote["manifest.json"])["decontaminated_against"]["yosm"]["files"]
    # unchanged inputs on S3: the rerun is skipped, as locally
    assert run(remote_args) is None


def test_store_stops_answering_mid_run_then_rerun_is_identical_row39(s3, local_run, monkeypatch):
    """The store goes away as the first shard is written: the run fails naming the URI, nothing is
    published, and once the store is back a rerun gives what an uninterrupted run gives."""
    import pipeline.language_shards as write_shards  # the step that calls write_shard

    real_write_shard = write_shards.write_shard

    def write_during_outage(path, lines):
        s3.outage()
        return real_write_shard(path, lines)

    out = f"s3://{BUCKET}/outage"
    args = [f"data_dir=s3://{BUCKET}/data", f"out_dir={out}", *SETTINGS, "--runner=DirectRunner", *s3.beam_flags()]
    monkeypatch.setattr(write_shards, "write_shard", write_during_outage)
    try:
        with pytest.raises(Exception) as failure:
            run(args)
    finally:
        monkeypatch.setattr(write_shards, "write_shard", real_write_shard)
        s3.restore()
    assert out in str(failure.value) or s3.endpoint in str(failure.value), str(failure.value)[:2000]
    left = download_tree(s3.client(direct=True), BUCKET, "outage")
    assert "manifest.json" not in left and not [k for k in left if k.endswith(".jsonl.gz") and "staging" not in k]
    manifest = run(args)
    remote = download_tree(s3.client(), BUCKET, "outage")
    local_manifest, local = local_run
    assert manifest["corpus_hash"] == local_manifest["corpus_hash"]
    for name, body in _local_outputs(local).items():
        if name not in ("manifest.json", "config.yaml"):
            assert remote[name] == body, name
    assert not [k for k in remote if ".staging-" in k]  # the failed run's staging is cleared
