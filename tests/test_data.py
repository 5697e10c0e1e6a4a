import time

import pytest

from tiny_cats.classifier.labels import LABELS, OTHER_ID
from tiny_cats.data import cats_only, load_local_pets, load_pets

from .conftest import SHARED_PETS, breed_image, make_pet_folder


def test_local_folder_splits_by_test_list(pet_folder):
    pets = load_pets(str(pet_folder))
    assert set(pets) == {"train", "test"}
    assert pets["train"].features["label"].names == list(LABELS)
    test_files = set(pets["test"]["file"])
    assert {"Abyssinian_2.jpg", "beagle_2.jpg"} <= test_files
    assert "Abyssinian_500.jpg" not in test_files  # listed, absent: skipped
    assert len(pets["train"]) + len(pets["test"]) == 5 * 4  # 21 files, one duplicate collapsed


def test_duplicates_never_straddle_the_split(pet_folder):
    pets = load_pets(str(pet_folder))
    train, test = set(pets["train"]["file"]), set(pets["test"]["file"])
    assert "Bengal_99.jpg" in test
    assert "Bengal_1.jpg" not in train and "Bengal_1.jpg" not in test


def test_dogs_are_other_and_cats_only_filters(pet_folder):
    pets = load_pets(str(pet_folder))
    rows = pets["train"].to_list() if hasattr(pets["train"], "to_list") else list(pets["train"])
    assert all((r["label"] == OTHER_ID) == (r["breed"] in ("beagle", "pug")) for r in rows)
    assert OTHER_ID not in cats_only(pets["train"])["label"]


def test_original_release_layout(tmp_path):
    root = make_pet_folder(tmp_path / "orig", per_breed=2, test_list_name="test.txt")
    (root / "annotations" / "trainval.txt").write_text("Abyssinian_1 1 1 1\n")
    pets = load_local_pets(root)
    assert "Abyssinian_2.jpg" in pets["test"]["file"]


def test_images_decode(pet_folder):
    image = load_pets(str(pet_folder))["train"][0]["image"]
    assert image.size == (48, 48)


def test_missing_folder_and_list(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images/ folder"):
        load_local_pets(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="test-pet.txt"):
        load_local_pets(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_pets("./does/not/exist")


def test_corrupt_file_is_named(pet_folder):
    (pet_folder / "images" / "Birman_7.jpg").write_text("not a jpeg")
    with pytest.raises(ValueError, match="Birman_7.jpg: not a readable image"):
        load_local_pets(pet_folder)


def test_badly_named_file_is_named(pet_folder):
    breed_image(0, 0).save(pet_folder / "images" / "kitty.jpg")
    with pytest.raises(ValueError, match="kitty.jpg"):
        load_local_pets(pet_folder)


def test_hub_id_offline_fails_fast(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError, match="HF_HUB_OFFLINE"):
        load_pets("timm/oxford-iiit-pet")


def test_hub_id_unreachable_fails_fast(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="cannot reach the Hugging Face Hub at http://127.0.0.1:9"):
        load_pets("timm/oxford-iiit-pet")
    assert time.monotonic() - started < 60


@pytest.mark.skipif(not SHARED_PETS.is_dir(), reason="real Oxford-IIIT Pet copy not present")
def test_real_shared_data():
    pets = load_pets(str(SHARED_PETS))
    train, test = pets["train"], pets["test"]
    # 19 byte-identical groups (one of three files) hold 20 extra copies, collapsed to one each.
    assert len(train) + len(test) == 4660 - 20
    assert not set(train["file"]) & set(test["file"])
    assert sorted(set(test["label"])) == list(range(13))
    assert "Bombay_85.jpg" in test["file"] or "Bombay_200.jpg" in test["file"]


def test_generator_holdout_is_fixed_per_breed_and_order_free():
    from tiny_cats.data import generator_holdout

    files = [f"Bengal_{i}.jpg" for i in range(20)] + [f"Sphynx_{i}.jpg" for i in range(20)]
    labels = [1] * 20 + [11] * 20
    held = generator_holdout(files, labels, 3)
    assert len(held) == 6 and sum(f.startswith("Bengal") for f in held) == 3
    assert generator_holdout(files[::-1], labels[::-1], 3) == held


def test_stratified_split_is_seeded_per_label_and_keeps_every_label_on_both_sides():
    from tiny_cats.data import stratified_split

    labels = [0] * 50 + [1] * 20 + [2] * 2 + [3] * 1
    kept, held = stratified_split(labels, 0.1, seed=0)
    assert sorted(kept + held) == list(range(len(labels))) and not set(kept) & set(held)
    assert [sum(labels[i] == y for i in held) for y in range(4)] == [5, 2, 1, 0]  # at least 1, never all
    assert stratified_split(labels, 0.1, seed=0) == (kept, held)
    assert stratified_split(labels, 0.1, seed=1)[1] != held
    with pytest.raises(ValueError, match="between 0 and 1"):
        stratified_split(labels, 1.0, seed=0)


def test_stratified_folds_hold_out_every_item_once_and_fold_0_is_the_usual_split():
    from tiny_cats.data import stratified_split

    labels = [0] * 96 + [1] * 94 + [2] * 1298  # 96 -> 10 per fold and 6 left; 94 -> 9 per fold and 13 left
    folds = [stratified_split(labels, 0.1, seed=3, fold=f) for f in range(10)]
    assert folds[0] == stratified_split(labels, 0.1, seed=3)
    held = [i for _, h in folds for i in h]
    assert sorted(held) == list(range(len(labels)))  # each item held out by exactly one fold
    for kept, h in folds:
        assert sorted(kept + h) == list(range(len(labels))) and {labels[i] for i in h} == {0, 1, 2}
    assert [sum(labels[i] == 1 for i in h) for _, h in folds] == [9] * 9 + [13]
    with pytest.raises(ValueError, match="fraction of 1/k"):
        stratified_split(labels, 0.15, seed=0, fold=1)
    with pytest.raises(ValueError, match="between 0 and 9"):
        stratified_split(labels, 0.1, seed=0, fold=10)
    with pytest.raises(ValueError, match="too few for 10 folds"):
        stratified_split([0] * 50 + [1] * 3, 0.1, seed=0, fold=5)
