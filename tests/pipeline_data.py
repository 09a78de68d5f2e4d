"""A tiny raw corpus + evaluation folder in the real layouts, for the corpus-stage tests."""
from __future__ import annotations

import unicodedata
from pathlib import Path

from tests.pipeline_fakes import write_catalog

# Evaluation items (>= 5 words, so they are indexed).
NER_TEST = "Àwọn ọlọ́pàá ti mú ọkùnrin méjì tí wọ́n fẹ̀sùn kàn pé wọ́n jí owó ní ìlú Èkó"
NEWS_HEADLINE = "Gwamnatin tarayya ta ƙaddamar da sabon shirin noma a jihar Kano"
TWEET = 'Mo fẹ́ràn orin "tuntun" yìí gan-an ni o @user'
YOSM_REVIEW = "Sinimá yìí dùn gan-an,\rmo gbádùn rẹ̀ láti ìbẹ̀rẹ̀ dé òpin"

YOR_LINES = [
    "Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́ pẹ̀lú àwọn ọ̀rẹ́ rẹ̀.",
    "Ẹ kú àárọ̀, ṣé dáadáa ni gbogbo ẹbí yín wà?",
    "Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́ pẹ̀lú àwọn ọ̀rẹ́ rẹ̀!",                  # exact dup
    # the NER test sentence, NFD, upper case, double spaces, inside a longer line
    "Ìròyìn:  " + unicodedata.normalize("NFD", NER_TEST.upper()).replace(" ", "  ") + " lánàá.",
    "ok",                                                                      # too short
    "The child goes to school every day and he is happy with it.",            # English pivot
    "Bàbá mi ti lọ sí oko láti ṣiṣẹ́ ní àárọ̀ yìí, ó sì máa padà wá ní alẹ́.",
    "Bàbá mi ti lọ sí oko láti ṣiṣẹ́ ní àárọ̀ yìí, ó sì máa padà wá ní alẹ́ lónìí.",  # near dup
    TWEET.replace('"', "“").replace("@user", "").upper(),                    # AfriSenti test tweet
    "Ìyá mi ń se oúnjẹ ní ilé ìdáná fún gbogbo ẹbí wa ní ọjọ́ Àìkú.",
    "Olùkọ́ wa kọ́ wa ní ẹ̀kọ́ ìṣirò àti èdè Yorùbá ní ọ̀sẹ̀ tó kọjá.",
    "Sinimá yìí dùn gan-an, mo gbádùn rẹ̀ láti ìbẹ̀rẹ̀ dé òpin.",              # YOSM test review
]
HAU_LINES = [
    "Yaron yana zuwa makaranta kowace rana tare da abokansa.",
    "Ina kwana, yaya aiki da iyali duka?",
    f"Labari: {NEWS_HEADLINE.lower()}",                                        # MasakhaNEWS headline
    "Manoma sun fara girbin amfanin gona a yankin arewacin kasar nan.",
]
AMH_LINES = [
    "ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል። እንደምን አደርክ ወዳጄ ዛሬ?",
    "ሰላም ነው ወይ ጓደኛዬ ዛሬ ጥሩ ቀን ነው።",
    "This is an English sentence in the Amharic file here.",               # wrong script
]


def _conll(path: Path, sentences: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("".join(f"{tok} O\n" for tok in s.split()) + "\n" for s in sentences),
                    encoding="utf-8")


def _tsv(path: Path, header: list[str], rows: list[list[str]], newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))


def make_eval_dir(root: Path) -> Path:
    """All six evaluation sets, one or two items each, in their real formats."""
    ev = root / "eval"
    _conll(ev / "masakhaner1/yor/test.txt", ["-DOCSTART-", NER_TEST, "Ẹ kú"])
    _conll(ev / "masakhaner1/yor/dev.txt", ["Adé lọ sí Ìbàdàn ní ọjọ́ Ajé tó kọjá"])
    _conll(ev / "masakhaner2/hau/test.txt", ["Shugaba Buhari ya ziyarci jihar Legas a ranar Litinin da ta gabata"])
    _conll(ev / "masakhaner2/hau/dev.txt", ["Ministan lafiya ya bayyana sabon tsari ga asibitoci"])
    news_row = ["politics", NEWS_HEADLINE, '"Gwamnati ta ce shirin zai taimaki manoma. Za a fara shi a wata mai zuwa ""nan take""."', "http://x"]
    _tsv(ev / "masakhanews/hau/test.tsv", ["category", "headline", "text", "url"], [news_row])
    _tsv(ev / "masakhanews/hau/dev.tsv", ["category", "headline", "text", "url"], [])
    _tsv(ev / "hedderich_topics/yor/test.tsv", ["bbc_url_id", "date", "news_title", "label"],
         [["1", "8 Oṣù Ìgbé 2019", "Àjọ WHO kéde pé àrùn náà ti tàn kálẹ̀ sí orílẹ̀-èdè mẹ́wàá", "health"]])
    _tsv(ev / "hedderich_topics/yor/dev.tsv", ["bbc_url_id", "date", "news_title", "label"], [])
    _tsv(ev / "yosm/test.tsv", ["yo_review", "sentiment"], [[YOSM_REVIEW, "positive"]])
    _tsv(ev / "yosm/dev.tsv", ["yo_review", "sentiment"], [])
    _tsv(ev / "afrisenti/yor/test.tsv", ["tweet", "label"], [[TWEET, "positive"]])
    _tsv(ev / "afrisenti/yor/dev.tsv", ["tweet", "label"], [])
    return ev


def make_corpus(root: Path) -> tuple[Path, Path]:
    """(data_dir, catalog path) with three sources; data_dir/eval holds the eval sets."""
    data = root / "data"
    (data / "src").mkdir(parents=True)
    (data / "src" / "yor.txt").write_text("\n".join(YOR_LINES) + "\n", encoding="utf-8")
    (data / "src" / "hau.txt").write_text("\r\n".join(HAU_LINES) + "\r\n", encoding="utf-8")
    (data / "src" / "amh.txt").write_bytes("\n".join(AMH_LINES).encode() + b"\nbad \xff\xfe bytes in a line\n")
    make_eval_dir(data)
    catalog = write_catalog(root, [
        {"name": "yor-src", "lang": "yor", "path": "src/yor.txt"},
        {"name": "hau-src", "lang": "hau", "path": "src/hau.txt"},
        {"name": "amh-src", "lang": "amh", "path": "src/amh.txt"},
    ])
    return data, catalog


def run_args(data: Path, catalog: Path, out: Path, *extra: str) -> list[str]:
    return [f"data_dir={data}", f"out_dir={out}", f"catalog={catalog}",
            "catalog_module=tests.pipeline_fakes", "readers_module=tests.pipeline_fakes", *extra]
