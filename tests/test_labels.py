import pytest

from tiny_cats.classifier.labels import (
    CAT_BREEDS,
    DOG_BREEDS,
    LABELS,
    OTHER_ID,
    label_to_id,
    oxford_breed_from_filename,
    resolve_breeds,
)


def test_thirteen_labels_twelve_cats_and_other():
    assert len(LABELS) == 13 and len(CAT_BREEDS) == 12 and LABELS[-1] == "other"
    assert len(DOG_BREEDS) == 25


@pytest.mark.parametrize("spelling", ["maine coon", "Maine_Coon", "MAINE-COON", "  maine   coon "])
def test_user_spellings(spelling):
    assert label_to_id(spelling) == LABELS.index("Maine_Coon")


def test_all_37_oxford_breeds_map():
    assert all(label_to_id(b) == OTHER_ID for b in DOG_BREEDS)
    assert [label_to_id(b) for b in CAT_BREEDS] == list(range(12))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown breed 'tabby'.*Abyssinian.*other"):
        label_to_id("tabby")


def test_filename_parsing():
    assert oxford_breed_from_filename("great_pyrenees_12.jpg") == "great_pyrenees"
    assert oxford_breed_from_filename("/x/British_Shorthair_3.jpg") == "British_Shorthair"
    with pytest.raises(ValueError, match="BREED_NUMBER"):
        oxford_breed_from_filename("cat.jpg")


def test_resolve_breeds_for_generator():
    assert resolve_breeds(["siamese", 0]) == [10, 0]
    with pytest.raises(ValueError, match="not a cat breed"):
        resolve_breeds("beagle", cats_only=True)
    with pytest.raises(ValueError, match="out of range"):
        resolve_breeds(13)
    with pytest.raises(ValueError, match="no breed"):
        resolve_breeds([])
