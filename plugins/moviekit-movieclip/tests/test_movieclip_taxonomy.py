"""The packaged MovieCLIP taxonomy and user taxonomies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from moviekit import MoviekitError
from moviekit_movieclip.taxonomy import NUM_LABELS, SOURCES, default_taxonomy_path, load_taxonomy, resolve_taxonomy

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "movieclip_taxonomy.csv"


def test_packaged_taxonomy_has_179_labels_and_sources():
    tax = load_taxonomy()
    assert len(tax) == NUM_LABELS == 179
    assert len(set(tax.labels)) == 179
    assert set(tax.columns) == {"source"}
    sources = tax.column("source")
    assert Counter(sources.values()) == Counter(SOURCES) == Counter({"movie_slugline": 69, "common": 68, "hvu": 26, "human_expert": 16})
    assert sources["war room"] == "movie_slugline"
    assert sources["kitchen"] == "common"
    assert sources["ice rink"] == "hvu"
    assert sources["phone booth"] == "human_expert"
    assert tax.labels[0] == "tent" and tax.index("river") == 178
    assert default_taxonomy_path().is_file()


@pytest.mark.skipif(not SHARED.is_file(), reason="shared data folder not present")
def test_packaged_copy_matches_the_shared_data():
    assert default_taxonomy_path().read_bytes() == SHARED.read_bytes()


def test_user_csv_keeps_extra_columns(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("group,Label,note\nhome, kitchen ,x\nhome,attic,\n\noutside,desert,hot\n")
    tax = load_taxonomy(p)
    assert tax.labels == ("kitchen", "attic", "desert")
    assert tax.column("group") == {"kitchen": "home", "attic": "home", "desert": "outside"}
    assert tax.column("note")["desert"] == "hot"


def test_user_text_file(tmp_path):
    p = tmp_path / "mine.txt"
    p.write_text("# my labels\nkitchen\n\n  attic \n")
    assert load_taxonomy(p).labels == ("kitchen", "attic")
    assert resolve_taxonomy(labels=["a", " b"]).labels == ("a", "b")


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("dup.txt", "kitchen\nkitchen\n", "more than once"),
        ("nolabel.csv", "name,source\nkitchen,x\n", "no 'label' column"),
        ("empty.txt", "# nothing\n", "no labels"),
    ],
)
def test_bad_taxonomies(tmp_path, name, text, match):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(MoviekitError, match=match):
        load_taxonomy(p)


def test_missing_file_and_both_sources(tmp_path):
    with pytest.raises(MoviekitError, match="not found"):
        load_taxonomy(tmp_path / "nope.csv")
    with pytest.raises(MoviekitError, match="either"):
        resolve_taxonomy(str(tmp_path / "x.csv"), ["a"])
