"""tiny-cats: classify Oxford-IIIT Pet cat breeds and generate cats of a chosen breed.

Importing the package registers the classifier with transformers' Auto classes, so
``AutoModelForImageClassification.from_pretrained`` and ``pipeline("image-classification")``
find it without ``trust_remote_code``.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from .configuration_tiny_cats import TinyCatsConfig
from .image_processing_tiny_cats import TinyCatsImageProcessor
from .labels import CAT_BREEDS, LABELS, label_to_id
from .modeling_tiny_cats import TinyCatsForImageClassification

__version__ = "0.1.0"

AutoConfig.register(TinyCatsConfig.model_type, TinyCatsConfig, exist_ok=True)
AutoModelForImageClassification.register(TinyCatsConfig, TinyCatsForImageClassification, exist_ok=True)
AutoImageProcessor.register(TinyCatsConfig, slow_image_processor_class=TinyCatsImageProcessor, exist_ok=True)
# save_pretrained then writes auto_map and copies the code files, for trust_remote_code users.
TinyCatsConfig.register_for_auto_class()
TinyCatsForImageClassification.register_for_auto_class("AutoModelForImageClassification")
TinyCatsImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "CAT_BREEDS",
    "LABELS",
    "TinyCatsConfig",
    "TinyCatsForImageClassification",
    "TinyCatsImageProcessor",
    "label_to_id",
]
