"""Pruning a colour's store after a deploy: only the archive it serves stays."""

from twinserve.release.deploy import prune_store


def touch(store, *names):
    for name in names:
        (store / name).write_bytes(b"mar")


def test_only_the_served_archive_of_the_model_stays(tmp_path):
    touch(tmp_path, "regressor-1.0.mar", "regressor-1.1.mar", "regressor-1.2.mar")
    assert prune_store(tmp_path, "regressor", keep="regressor-1.2.mar") == ["regressor-1.0.mar", "regressor-1.1.mar"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["regressor-1.2.mar"]


def test_other_models_and_other_files_are_left_alone(tmp_path):
    touch(tmp_path, "regressor-1.0.mar", "regressor-1.1.mar", "regressor-big-1.0.mar", "digits-1.0.mar", "notes.txt")
    assert prune_store(tmp_path, "regressor", keep="regressor-1.1.mar") == ["regressor-1.0.mar"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["digits-1.0.mar", "notes.txt", "regressor-1.1.mar", "regressor-big-1.0.mar"]


def test_an_empty_or_missing_store_prunes_nothing(tmp_path):
    assert prune_store(tmp_path, "regressor", keep="regressor-1.0.mar") == []
    assert prune_store(tmp_path / "absent", "regressor", keep="regressor-1.0.mar") == []
