"""Oxford-IIIT Pet as a ``datasets.DatasetDict`` over tiny-cats' 13 labels.

Sources:
- a local folder in the original release layout (``images/`` + ``annotations/trainval.txt`` and
  ``annotations/test.txt``), or in the layout of ``shared/data/oxford-iiit-pet`` (``images/`` +
  ``annotations/test-pet.txt``; every image not listed there is training data). Files that a
  list names but that are absent are skipped.
- a Hub dataset id (the real code path, e.g. ``timm/oxford-iiit-pet``). Offline it fails at once
  with a message naming the endpoint, instead of hanging on retries.

Byte-identical duplicates are collapsed to one copy before splitting: a group with any member
in the test list goes to test, so the same photo can never sit on both sides of the split.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import datasets
import numpy as np
from PIL import Image

from .classifier.labels import LABELS, OTHER_ID, label_to_id, oxford_breed_from_filename

logger = logging.getLogger(__name__)

FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=list(LABELS)),
        "breed": datasets.Value("string"),
        "file": datasets.Value("string"),
    }
)
TEST_LISTS = ("test.txt", "test-pet.txt")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class PetImage:
    path: Path
    breed: str
    sha1: str


def _read_list(path: Path) -> set:
    """Image stems of an Oxford list file ('Abyssinian_201 1 1 1' per line; '#' lines are comments)."""
    stems = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            stems.add(line.split()[0])
    return stems


def _scan_images(image_dir: Path) -> List[PetImage]:
    """Every Oxford-named image in ``image_dir`` with its breed and SHA-1; unreadable files are errors."""
    found = []
    for path in sorted(image_dir.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
            continue
        breed = oxford_breed_from_filename(path.name)
        data = path.read_bytes()
        if not data:
            raise ValueError(f"{path}: file is empty (0 bytes)")
        try:
            with Image.open(path) as image:
                image.verify()
        except Exception as err:  # PIL raises many types for broken files
            raise ValueError(f"{path}: not a readable image ({err})") from None
        found.append(PetImage(path, breed, hashlib.sha1(data).hexdigest()))
    return found


def split_local_images(images: List[PetImage], test_stems: set) -> Dict[str, List[PetImage]]:
    """Split into train/test by the test list, keeping one copy of each byte-identical group."""
    groups: Dict[str, List[PetImage]] = {}
    for item in images:
        groups.setdefault(item.sha1, []).append(item)
    split: Dict[str, List[PetImage]] = {"train": [], "test": []}
    for members in groups.values():
        in_test = [m for m in members if m.path.stem in test_stems]
        if len({m.breed for m in members}) > 1:
            logger.warning("identical files with different breeds dropped: %s", [m.path.name for m in members])
            continue
        split["test" if in_test else "train"].append((in_test or members)[0])
    return split


def _to_dataset(items: List[PetImage]) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "image": [str(item.path) for item in items],
            "label": [label_to_id(item.breed) for item in items],
            "breed": [item.breed for item in items],
            "file": [item.path.name for item in items],
        },
        features=FEATURES,
    )


def load_local_pets(root: os.PathLike) -> datasets.DatasetDict:
    """Load a local Oxford-IIIT Pet folder (original or shared layout) into train/test."""
    root = Path(root)
    image_dir = root / "images"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{root}: no images/ folder; expected the Oxford-IIIT Pet layout (images/, annotations/)")
    lists = [root / "annotations" / name for name in TEST_LISTS if (root / "annotations" / name).is_file()]
    if not lists:
        raise FileNotFoundError(f"{root}/annotations: none of {', '.join(TEST_LISTS)} found; cannot tell the test split")
    test_stems = set().union(*(_read_list(path) for path in lists))
    images = _scan_images(image_dir)
    if not images:
        raise ValueError(f"{image_dir}: no Oxford-named images (BREED_NUMBER.jpg)")
    split = split_local_images(images, test_stems)
    dropped = len(images) - len(split["train"]) - len(split["test"])
    logger.info("%s: %d train, %d test, %d duplicate copies dropped", root, len(split["train"]), len(split["test"]), dropped)
    return datasets.DatasetDict({name: _to_dataset(items) for name, items in split.items()})


def _check_hub_reachable(repo_id: str, timeout: float = 10.0) -> None:
    """Fail fast, with a clear message, when the Hub cannot be reached (offline machines)."""
    import huggingface_hub
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ConnectionError(f"cannot load dataset {repo_id!r} from the Hub: HF_HUB_OFFLINE is set; pass a local folder")
    try:
        huggingface_hub.HfApi().dataset_info(repo_id, timeout=timeout)
    except huggingface_hub.errors.RepositoryNotFoundError:
        raise ValueError(f"dataset {repo_id!r} does not exist on {constants.ENDPOINT} (or is private)") from None
    except (OSError, huggingface_hub.errors.HfHubHTTPError) as err:
        raise ConnectionError(
            f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} to load dataset {repo_id!r} "
            f"({type(err).__name__}); pass a local folder instead"
        ) from None


def _hub_to_tiny_cats(dataset: datasets.Dataset) -> datasets.Dataset:
    """Map a Hub copy of Oxford-IIIT Pet (37-way ClassLabel ``label``) onto the 13 labels."""
    label_feature = dataset.features.get("label")
    if not isinstance(label_feature, datasets.ClassLabel):
        raise ValueError(f"Hub dataset has no ClassLabel column 'label' (columns: {list(dataset.features)})")
    names = label_feature.names
    image_column = "image" if "image" in dataset.features else next(iter(dataset.features))

    def convert(batch):
        breeds = [names[i] for i in batch["label"]]
        return {
            "image": batch[image_column],
            "label": [label_to_id(b) for b in breeds],
            "breed": breeds,
            "file": batch.get("image_id", [""] * len(breeds)),
        }

    return dataset.map(convert, batched=True, remove_columns=dataset.column_names, features=FEATURES)


def load_pets(source: str, cache_dir: Optional[str] = None) -> datasets.DatasetDict:
    """Load Oxford-IIIT Pet from a local folder or a Hub dataset id, as train/test over 13 labels."""
    if os.path.isdir(source):
        return load_local_pets(source)
    if os.path.sep in source.strip("/").split("/", 1)[-1] or source.startswith((".", "/")):
        raise FileNotFoundError(f"{source}: no such folder")
    _check_hub_reachable(source)
    loaded = datasets.load_dataset(source, cache_dir=cache_dir)
    test_name = "test" if "test" in loaded else "validation"
    return datasets.DatasetDict({"train": _hub_to_tiny_cats(loaded["train"]), "test": _hub_to_tiny_cats(loaded[test_name])})


def cats_only(dataset: datasets.Dataset) -> datasets.Dataset:
    """Keep the 12 cat breeds (the generator's training data)."""
    return dataset.filter(lambda labels: [label != OTHER_ID for label in labels], input_columns="label", batched=True)


def default_data_dir() -> Optional[str]:
    """``$TINY_CATS_DATA`` or the shared Oxford-IIIT Pet copy beside the checkout, if present."""
    candidates = [os.environ.get("TINY_CATS_DATA"), str(Path(__file__).resolve().parents[2] / "shared/data/oxford-iiit-pet")]
    return next((c for c in candidates if c and os.path.isdir(c)), None)


def as_stream(dataset: datasets.Dataset, num_shards: int, seed: int, buffer_size: int = 1000) -> datasets.IterableDataset:
    """``dataset`` read shard by shard through a shuffle buffer, instead of by random access.

    Memory then holds a buffer, not the training set, and a Hub dataset loaded with
    ``streaming=True`` takes the same path. Accelerate gives each process its own shards and
    each DataLoader worker reads its own among those, so ``num_shards`` should be a multiple of
    processes x workers. ``set_epoch(n)`` (Accelerate calls it) reshuffles shards and buffer
    from ``seed + n``: the order of every epoch is reproducible.
    """
    stream = dataset.to_iterable_dataset(num_shards=num_shards)
    # max_buffer_input_shards=1: the buffer reads one shard at a time, keeping the shards separate.
    return stream.shuffle(seed=seed, buffer_size=buffer_size, max_buffer_input_shards=1)


def stratified_split(labels, fraction: float, seed: int, fold: int = 0) -> Tuple[List[int], List[int]]:
    """Indices ``(kept, held_out)``: a seeded ``fraction`` of each label's items held out (e.g. for validation).

    Each label holds out ``round(fraction x its count)`` items, but at least one and never all of
    them when it has two or more, so every label is on both sides. The choice depends only on the
    labels, the fraction, the seed and the fold. Byte-identical duplicate photos were collapsed when
    the data was loaded, so a photo cannot be on both sides.

    ``fold`` makes it k-fold cross-validation, with k = 1 / ``fraction`` (which must then be a whole
    number): fold f holds out the f-th slice of the same per-label permutation, the last fold the rest,
    so the k folds hold out every item exactly once. Fold 0 is the split this function has always made.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    folds = round(1 / fraction)
    if fold and abs(folds * fraction - 1) > 1e-9:
        raise ValueError(f"validation folds need a fraction of 1/k (0.1 for 10 folds), got {fraction}")
    if not 0 <= fold < folds:
        raise ValueError(f"the fold must be between 0 and {folds - 1} for a fraction of {fraction}, got {fold}")
    labels = list(labels)
    rng = np.random.default_rng(seed)
    held = []
    for label in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == label]
        count = min(max(round(fraction * len(members)), 1), len(members) - 1)
        order = rng.permutation(members)
        chunk = order[:count] if fold == 0 else order[fold * count:None if fold == folds - 1 else (fold + 1) * count]
        if fold and len(members) > 1 and not 0 < len(chunk) < len(members):
            raise ValueError(f"label {label!r} has {len(members)} items: too few for {folds} folds")
        held += chunk.tolist()
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


def split_validation(train: datasets.Dataset, fraction: float, seed: int,
                     fold: int = 0) -> Tuple[datasets.Dataset, datasets.Dataset]:
    """``(kept, validation)``: the training photos without, and with only, the :func:`stratified_split`
    held-out share; the one way the classifier's scripts carve their validation split."""
    kept, held = stratified_split(train["label"], fraction, seed, fold)
    return train.select(kept), train.select(held)


def validation_split_of(config: dict) -> Tuple[float, int, int]:
    """``(validation_fraction, validation_seed, validation_fold)`` a classifier run held out, from its saved
    config; runs from before ``validation_seed`` existed carved the split with their training ``seed``, and
    runs from before ``validation_fold`` held out fold 0."""
    return config.get("validation_fraction"), config.get("validation_seed", config.get("seed")), \
        config.get("validation_fold", 0)


def generator_holdout(files, labels, per_breed: int) -> set:
    """Cat photos kept out of generator training, so that memorisation can be measured against them.

    Per breed, the ``per_breed`` file names with the smallest MD5: a fixed choice that does not
    depend on the order or the split the files come in.
    """
    chosen = set()
    for breed in set(labels):
        names = sorted((f for f, b in zip(files, labels) if b == breed), key=lambda f: hashlib.md5(f.encode()).hexdigest())
        chosen.update(names[:per_breed])
    return chosen


def pack_cats(source: str, size: int, splits=("train", "test"), holdout_per_breed: int = 0):
    """Every cat photo of ``splits`` squashed to ``size`` x ``size`` (bicubic), as arrays.

    Returns ``(images, labels, files)``: uint8 ``(N, 3, size, size)``, int64 breed ids ``(N,)``
    (0-11, the generator's classes) and the file names. The generator has no test split to
    protect, so it may train on every cat; 2,160 cats at 64 px take 26.5 MB.
    ``holdout_per_breed`` leaves out :func:`generator_holdout`'s photos.
    """
    import numpy as np

    loaded = load_pets(source)
    parts = [cats_only(loaded[name]) for name in splits]
    held = set()
    if holdout_per_breed:
        held = generator_holdout([f for p in parts for f in p["file"]], [b for p in parts for b in p["label"]],
                                 holdout_per_breed)
    images, labels, files = [], [], []
    for part in parts:
        for row in part:
            if row["file"] in held:
                continue
            image = row["image"].convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BICUBIC)
            images.append(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
            labels.append(row["label"])
            files.append(row["file"])
    return np.stack(images), np.asarray(labels, dtype=np.int64), files


def packed_cats_file(source: str, size: int, splits=("train", "test"), cache_dir: os.PathLike = "outputs/packed",
                     holdout_per_breed: int = 0) -> Path:
    """``cache_dir/cats_{splits}[-holdoutN]_{size}px.npz`` (images, labels, files) from :func:`pack_cats`, built once."""
    import numpy as np

    held = f"-holdout{holdout_per_breed}" if holdout_per_breed else ""
    path = Path(cache_dir) / f"cats_{'+'.join(splits)}{held}_{size}px.npz"
    if not path.is_file():
        images, labels, files = pack_cats(source, size, splits, holdout_per_breed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, images=images, labels=labels, files=np.asarray(files))
        tmp.replace(path)
    return path


class PackedCats:
    """A map-style dataset over a packed ``.npz``: ``{"pixel_values": (3, S, S) float in [0, 1], "labels": int}``.

    No decoding at training time: the whole set sits in memory as uint8 (26.5 MB at 64 px).
    """

    def __init__(self, path: os.PathLike):
        import numpy as np

        with np.load(path) as packed:
            self.images, self.labels = packed["images"], packed["labels"]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        import torch

        return {"pixel_values": torch.from_numpy(self.images[index]).float().div_(255.0),
                "labels": int(self.labels[index])}
