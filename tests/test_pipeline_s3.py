"""The corpus stage reading from and writing to real S3-compatible storage (moto on loopback)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline import catalog
from pipeline.run import run
from tests.s3_server import S3Server, download_tree, upload_tree

pytest.importorskip("moto", reason="the S3 tests need moto (pip install 'moto[server]')")
pytest.importorskip("boto3", reason="Beam's S3 filesystem needs boto3 (apache-beam[aws])")

SOURCES = ["kikuyu_genesis_kik", "yoruba_proverbs_yor", "za_news_titles_ssw"]   # small, three formats
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
        yield server
    finally:
        server.stop()


def _local_outputs(out) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_corpus_on_s3_equals_local_run(s3, data_dir, tmp_path):
    local = tmp_path / "local"
    local_manifest = run([f"data_dir={data_dir}", f"out_dir={local}", *SETTINGS])
    remote_manifest = run([f"data_dir=s3://{BUCKET}/data", f"out_dir=s3://{BUCKET}/out", *SETTINGS, *s3.beam_flags()])
    remote = download_tree(s3.client(), BUCKET, "out")
    expected = _local_outputs(local)
    assert sorted(remote) == sorted(expected)
    for name, body in expected.items():
        if name not in ("manifest.json", "config.yaml"):   # these name data_dir and out_dir
            assert remote[name] == body, name
    differ = {k for k, v in yaml.safe_load(remote["config.yaml"]).items()
              if yaml.safe_load(expected["config.yaml"])[k] != v}
    assert differ == {"data_dir", "out_dir"}
    assert remote_manifest["corpus_hash"] == local_manifest["corpus_hash"]
    assert remote_manifest["inputs"] == local_manifest["inputs"]   # data hashed by path below data_dir
    assert json.loads(remote["manifest.json"])["decontaminated_against"]["yosm"]["files"]
    # unchanged inputs on S3: the rerun is skipped, as locally
    assert run([f"data_dir=s3://{BUCKET}/data", f"out_dir=s3://{BUCKET}/out", *SETTINGS, *s3.beam_flags()]) is None
