"""tiny-cats: classify Oxford-IIIT Pet cat breeds and generate cats of a chosen breed.

Importing the package registers the classifier with transformers' Auto classes, so
``AutoModelForImageClassification.from_pretrained``, ``AutoModel.from_pretrained`` (the backbone,
:class:`TinyCatsModel`) and ``pipeline("image-classification")`` find it without ``trust_remote_code``.

The import itself is cheap (no torch, no transformers), so that ``tiny-cats --help`` answers at
once: the names below are loaded on first use, and the registration runs as soon as transformers
is imported (right away when it already is). :func:`register_auto_classes` does it explicitly.
"""

from __future__ import annotations

import importlib
import logging
import sys

__version__ = "0.1.0"

# name -> submodule that defines it, loaded on first attribute access (PEP 562).
_EXPORTS = {
    "CAT_BREEDS": ".classifier.labels",
    "LABELS": ".classifier.labels",
    "label_to_id": ".classifier.labels",
    "TinyCatsConfig": ".classifier.configuration_tiny_cats",
    "TinyCatsForImageClassification": ".classifier.modeling_tiny_cats",
    "TinyCatsModel": ".classifier.modeling_tiny_cats",
    "TinyCatsImageProcessor": ".classifier.image_processing_tiny_cats",
    "TinyDiTPipeline": ".generator.pipeline_tiny_dit",
    "TinyDiTTransformer2DModel": ".generator.modeling_tiny_dit",
    "TinyCatsImageClassificationPipeline": ".classification",
    "classify": ".classification",
    "load_classifier_pipeline": ".classification",
    "ImageInputError": ".image_io",
    "load_image": ".image_io",
    "load_images": ".image_io",
}

__all__ = sorted(_EXPORTS) + ["register_auto_classes"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tiny_cats' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


class _DropOptimumNamespaceNotice(logging.Filter):
    """diffusers logs "Multiple distributions found for package optimum" on import whenever
    optimum-onnx is installed: optimum-onnx adds to the ``optimum`` namespace package, so two
    distributions own that name by design. Nothing is wrong and nothing can be done about it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Multiple distributions found for package optimum.")


class _DropSlowProcessorNoticeForTinyCats(logging.Filter):
    """transformers 4.57 says "Using a slow image processor as `use_fast` is unset ... `use_fast=True`
    will be the default" whenever a processor without "Fast" in its saved type loads without
    ``use_fast``. ``TinyCatsImageProcessor`` has no fast variant, so for it the notice is void
    (``use_fast=True`` falls back to it). Dropped only when the processor being loaded is ours:
    the loading frame's ``image_processor_type`` says which."""

    MESSAGE = "Using a slow image processor as `use_fast` is unset"

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.MESSAGE):
            return True
        frame = sys._getframe(1)
        for _ in range(12):
            if frame is None:
                break
            if frame.f_locals.get("image_processor_type") == "TinyCatsImageProcessor":
                return False
            frame = frame.f_back
        return True


logging.getLogger("diffusers.utils.import_utils").addFilter(_DropOptimumNamespaceNotice())
logging.getLogger("transformers.models.auto.image_processing_auto").addFilter(_DropSlowProcessorNoticeForTinyCats())

# ------------------------------------------------------------------ Auto-class registration

_registered = False
_pending = False  # transformers is imported, but one of our modules was mid-import at that moment
_executing = 0  # tiny_cats submodules being executed right now


def register_auto_classes() -> None:
    """Register the classifier's config, models and image processor with transformers' Auto classes.

    Idempotent; runs by itself once both tiny_cats and transformers are imported.
    """
    global _registered, _pending
    if _registered:
        return
    _registered, _pending = True, False
    try:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

        from .classifier.configuration_tiny_cats import TinyCatsConfig
        from .classifier.image_processing_tiny_cats import TinyCatsImageProcessor
        from .classifier.modeling_tiny_cats import TinyCatsForImageClassification, TinyCatsModel

        AutoConfig.register(TinyCatsConfig.model_type, TinyCatsConfig, exist_ok=True)
        AutoModel.register(TinyCatsConfig, TinyCatsModel, exist_ok=True)
        AutoModelForImageClassification.register(TinyCatsConfig, TinyCatsForImageClassification, exist_ok=True)
        AutoImageProcessor.register(TinyCatsConfig, slow_image_processor_class=TinyCatsImageProcessor, exist_ok=True)
        # save_pretrained then writes auto_map and copies the code files, for trust_remote_code users.
        TinyCatsConfig.register_for_auto_class()
        TinyCatsModel.register_for_auto_class("AutoModel")
        TinyCatsForImageClassification.register_for_auto_class("AutoModelForImageClassification")
        TinyCatsImageProcessor.register_for_auto_class("AutoImageProcessor")
    except BaseException:
        _registered = False
        raise
    finally:
        _remove_import_hook()


class _Loader:
    """Runs the real loader, then registers once transformers and none of our modules is mid-import."""

    def __init__(self, loader, is_transformers: bool):
        self._loader = loader
        self._is_transformers = is_transformers

    def __getattr__(self, name):  # get_source, get_resource_reader, is_package, ...
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        global _executing, _pending
        if self._is_transformers:
            self._loader.exec_module(module)
            _pending = True
        else:
            _executing += 1
            try:
                self._loader.exec_module(module)
            finally:
                _executing -= 1
        if _pending and _executing == 0 and not _registered:
            register_auto_classes()


class _RegisterWhenTransformersLoads:
    """A meta-path finder that wraps the loaders of ``transformers`` and of ``tiny_cats.*``."""

    def find_spec(self, name, path=None, target=None):
        if _registered or not (name == "transformers" or name.startswith(__name__ + ".")):
            return None
        for finder in sys.meta_path:
            if isinstance(finder, _RegisterWhenTransformersLoads) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, name == "transformers")
        return spec

    def invalidate_caches(self) -> None:
        pass


_HOOK = _RegisterWhenTransformersLoads()


def _remove_import_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


if "transformers" in sys.modules:
    register_auto_classes()
else:
    sys.meta_path.insert(0, _HOOK)
