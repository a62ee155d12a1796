"""twinserve/tools/drift_sources.py: the image and text streams' scenario generators and draws (pure parts)."""

import numpy as np
import pytest
import torch

from twinserve.tools import drift_sources


def test_a_stream_is_warmup_rows_of_the_undrifted_pool_then_rows_of_the_changed_one():
    undrifted, changed = np.zeros((10, 3)), np.arange(30.0).reshape(10, 3) + 1
    rows = drift_sources.draw_stream(undrifted, changed, warmup=500, after=700, seed=1)
    assert rows.shape == (1200, 3)
    assert not rows[:500].any()
    assert all(any((r == c).all() for c in changed) for r in rows[500:])
    assert np.array_equal(rows, drift_sources.draw_stream(undrifted, changed, 500, 700, seed=1))  # seeded
    assert not np.array_equal(rows, drift_sources.draw_stream(undrifted, changed, 500, 700, seed=2))


def test_pools_sketch_the_watched_features_only_and_draw_each_scenario_from_its_own_pool():
    rng = np.random.default_rng(0)
    columns = {"a": rng.normal(size=400), "b": rng.normal(size=400), "unwatched": rng.normal(size=400)}
    shifted = {f: v + 10 for f, v in columns.items()}
    pools = drift_sources.Pools("m", columns, ["b", "a"], {"shifted": shifted})
    assert pools.names == ["b", "a"] and set(pools.reference) == {"a", "b"} and "kll" in pools.reference["a"]
    assert pools.scenarios == ("shifted",)
    none = pools.rows("none", warmup=100, after=100, seed=3)
    assert np.abs(none).max() < 6
    rows = pools.rows("shifted", warmup=100, after=100, seed=3)
    assert np.abs(rows[:100]).max() < 6 and rows[100:].min() > 4
    assert set(rows[100:, 0]) <= set(shifted["b"])  # columns in `names` order


def test_inverted_and_rotated_images_move_ink_as_they_say():
    x = torch.zeros(2, 1, 8, 8)
    x[:, 0, 0, 1] = 16.0  # one ink pixel in the top row
    assert torch.equal(drift_sources.inverted(x), 16.0 - x)
    quarter = drift_sources.rotated(x, 1)
    assert quarter[0, 0, 0, 1] == 0 and quarter.sum() == x.sum() and not torch.equal(quarter, x)
    assert torch.equal(drift_sources.rotated(drift_sources.rotated(x, 2), 2), x)
    assert drift_sources.rotated(x, 2)[0, 0, 7, 6] == 16.0


def test_letters_are_drawn_offline_and_decoded_as_the_handler_decodes_an_image():
    grids = drift_sources.letter_grids()
    assert len(grids) == 3 * len(drift_sources.LETTERS) * 3  # font sizes x letters x offsets
    values = np.asarray(grids)
    assert values.shape == (len(grids), 64) and values.min() >= 0 and values.max() <= 16
    ink = values.mean(axis=1)
    assert ink.min() > 0.2 and ink.max() < 12  # every letter has ink (a blank square is 0), none fills it
    assert len({tuple(g) for g in grids}) > len(drift_sources.LETTERS)  # sizes and offsets differ


def test_another_domains_sentences_come_from_the_standard_librarys_docstrings():
    sentences = drift_sources.doc_sentences(("json",), min_chars=20, max_chars=300)
    assert len(sentences) > 10 and len(set(sentences)) == len(sentences)
    assert all(20 <= len(s) <= 300 and "\n" not in s for s in sentences)
    assert any("JSON" in s for s in sentences)


def test_a_models_train_py_imports_its_own_model_module_whatever_was_imported_before(tmp_path):
    for name, value in (("one", 1), ("two", 2)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.py").write_text(f"VALUE = {value}\n")
        (folder / "train.py").write_text(
            "import sys\nfrom pathlib import Path\nsys.path.insert(0, str(Path(__file__).parent))\n"
            "from model import VALUE\n"
        )
    assert drift_sources.load_train(tmp_path / "one", "t1").VALUE == 1
    assert drift_sources.load_train(tmp_path / "two", "t2").VALUE == 2
    assert str(tmp_path / "two") not in __import__("sys").path


@pytest.mark.parametrize("scenarios", [drift_sources.DIGITS_SCENARIOS, drift_sources.TEXT_SCENARIOS])
def test_scenario_names_are_distinct_and_none_is_reserved_for_the_undrifted_stream(scenarios):
    assert len(set(scenarios)) == len(scenarios) and "none" not in scenarios
