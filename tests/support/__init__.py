"""What the tests share, one module per stage; none of it ships in the wheel.

    from tests.support import MULTILINGUAL_LINES, REPO_ROOT
    from tests.support.publish import FakeHub

`pipeline` (a stand-in catalog and reader, a tiny raw corpus), `tokenizer` (tiny real
tokenizers), `pretrain`, `finetune` (tiny models, user task files), `publish` (a fake Hub
server, tiny runs) and `report` (a fake run folder of every stage). Scripts run by path
(tests/pretrain_entry.py, tests/bench_selection.py, tests/reliability_table.py) stay out of this
folder: run from here, its modules would hide the stage packages of the same names.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """The real data (`AFRO_DATA_DIR`, default ../shared/data beside the repo)."""
    return Path(os.environ.get("AFRO_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


# A few lines per script family: Latin with tone marks (Yoruba, Igbo), Ge'ez, emoji.
MULTILINGUAL_LINES = {
    "yor": ["Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́.", "Ẹ kú àárọ̀, ṣé dáadáa ni?"],
    "ibo": ["Nwaanyị ahụ na-eri nri n'ụlọ ya.", "Ọ bụ ezigbo mmadụ."],
    "hau": ["Yaron yana zuwa makaranta kowace rana.", "Ina kwana, yaya aiki?"],
    "amh": ["ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል።", "እንደምን አደርክ?"],
    "swa": ["Mtoto anaenda shule kila siku 🙂.", "Habari za asubuhi?"],
}
