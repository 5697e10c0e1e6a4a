"""The one place that owns tiny-cats' label set.

13 labels: the 12 Oxford-IIIT Pet cat breeds and ``other`` (anything that is not a cat;
in the training data, the 25 dog breeds). Every other module asks this one for ids and
names so that the classifier, the generator, the data loader and the CLI never disagree.
"""

from __future__ import annotations

import re
from typing import Iterable, List, Sequence, Union

CAT_BREEDS: tuple[str, ...] = (
    "Abyssinian",
    "Bengal",
    "Birman",
    "Bombay",
    "British_Shorthair",
    "Egyptian_Mau",
    "Maine_Coon",
    "Persian",
    "Ragdoll",
    "Russian_Blue",
    "Siamese",
    "Sphynx",
)
OTHER_LABEL = "other"
LABELS: tuple[str, ...] = CAT_BREEDS + (OTHER_LABEL,)
NUM_LABELS = len(LABELS)
OTHER_ID = LABELS.index(OTHER_LABEL)

# The 25 dog breeds of Oxford-IIIT Pet, spelled as in its file names. All map to ``other``.
DOG_BREEDS: tuple[str, ...] = (
    "american_bulldog",
    "american_pit_bull_terrier",
    "basset_hound",
    "beagle",
    "boxer",
    "chihuahua",
    "english_cocker_spaniel",
    "english_setter",
    "german_shorthaired",
    "great_pyrenees",
    "havanese",
    "japanese_chin",
    "keeshond",
    "leonberger",
    "miniature_pinscher",
    "newfoundland",
    "pomeranian",
    "pug",
    "saint_bernard",
    "samoyed",
    "scottish_terrier",
    "shiba_inu",
    "staffordshire_bull_terrier",
    "wheaten_terrier",
    "yorkshire_terrier",
)
OXFORD_BREEDS: tuple[str, ...] = CAT_BREEDS + DOG_BREEDS

ID2LABEL = {i: name for i, name in enumerate(LABELS)}
LABEL2ID = {name: i for i, name in enumerate(LABELS)}


def _normalize(name: str) -> str:
    """'maine coon', 'Maine-Coon' and 'MAINE_COON' all become 'maine_coon'."""
    return re.sub(r"[\s\-_]+", "_", name.strip()).lower()


_LOOKUP = {_normalize(name): LABEL2ID[name] for name in LABELS}
_LOOKUP.update({_normalize(dog): OTHER_ID for dog in DOG_BREEDS})


def label_to_id(name: str) -> int:
    """Return the label id for a breed name in any common spelling.

    Accepts the 13 label names, the 37 Oxford-IIIT Pet breed names (dogs map to ``other``),
    any case, with spaces, dashes or underscores. Raises ``ValueError`` listing valid names.
    """
    if not isinstance(name, str):
        raise TypeError(f"breed name must be a string, got {type(name).__name__}")
    key = _normalize(name)
    if key not in _LOOKUP:
        raise ValueError(f"unknown breed {name!r}; valid names are: {', '.join(LABELS)}")
    return _LOOKUP[key]


def oxford_breed_from_filename(filename: str) -> str:
    """'Maine_Coon_12.jpg' -> 'Maine_Coon'; 'great_pyrenees_3.jpg' -> 'great_pyrenees'."""
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    breed, sep, number = stem.rpartition("_")
    if not sep or not number.isdigit() or breed not in OXFORD_BREEDS:
        raise ValueError(f"file name {filename!r} does not follow the Oxford-IIIT Pet pattern BREED_NUMBER.jpg")
    return breed


BreedSpec = Union[str, int]


def resolve_breeds(breeds: Union[BreedSpec, Sequence[BreedSpec]], *, cats_only: bool = False) -> List[int]:
    """Turn a name, an id, or a list of either into a list of label ids.

    With ``cats_only`` (the generator), ``other`` is refused: there is no breed to draw.
    """
    items: Iterable[BreedSpec] = [breeds] if isinstance(breeds, (str, int)) else list(breeds)
    ids = []
    for item in items:
        if isinstance(item, bool):
            raise TypeError("breed must be a name or an integer id, not a bool")
        if isinstance(item, int):
            if not 0 <= item < NUM_LABELS:
                raise ValueError(f"label id {item} out of range 0..{NUM_LABELS - 1}")
            label_id = item
        else:
            label_id = label_to_id(item)
        if cats_only and label_id == OTHER_ID:
            raise ValueError(f"{OTHER_LABEL!r} is not a cat breed; choose one of: {', '.join(CAT_BREEDS)}")
        ids.append(label_id)
    if not ids:
        raise ValueError("no breed given")
    return ids
