"""Shared test set-up: offline Hugging Face, the real data folder, tiny multilingual text."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The real data (`AFRO_DATA_DIR`, default ../shared/data beside the repo)."""
    return Path(os.environ.get("AFRO_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not (path / "mono" / "SOURCES.tsv").exists():
        pytest.skip(f"real data not found at {path} (set AFRO_DATA_DIR)")
    return path


# A few lines per script family: Latin with tone marks (Yoruba, Igbo), Ge'ez, emoji.
MULTILINGUAL_LINES = {
    "yor": ["Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́.", "Ẹ kú àárọ̀, ṣé dáadáa ni?"],
    "ibo": ["Nwaanyị ahụ na-eri nri n'ụlọ ya.", "Ọ bụ ezigbo mmadụ."],
    "hau": ["Yaron yana zuwa makaranta kowace rana.", "Ina kwana, yaya aiki?"],
    "amh": ["ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል።", "እንደምን አደርክ?"],
    "swa": ["Mtoto anaenda shule kila siku 🙂.", "Habari za asubuhi?"],
}
