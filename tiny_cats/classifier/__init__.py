"""The classifier's code: exactly the files that travel as remote code beside its weights.

``save_pretrained`` copies ``configuration_tiny_cats.py``, ``modeling_tiny_cats.py``,
``image_processing_tiny_cats.py``, ``onnx_config_tiny_cats.py`` and ``labels.py`` (the one owner
of the 13 labels) into every classifier folder. Each imports only torch, transformers, numpy,
PIL and its siblings here, so ``trust_remote_code=True`` works without tiny-cats installed.
This file does not travel, and imports nothing, so that ``tiny_cats.classifier.labels`` stays cheap.
"""
