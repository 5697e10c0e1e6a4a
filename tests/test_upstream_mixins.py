"""transformers' and diffusers' own common test mixins, run against tiny-cats' classes.

The mixins are not vendored: they are imported from an unpacked source tree of each library, and
this whole module is skipped unless environment variables point at one:

    # transformers: the sdist carries tests/test_*_common.py
    pip download transformers==4.57.6 --no-binary :all: --no-deps && tar xzf transformers-4.57.6.tar.gz
    export TRANSFORMERS_TESTS_DIR=$PWD/transformers-4.57.6/tests
    # diffusers: the v0.39.0 tag of github.com/huggingface/diffusers
    git clone --depth 1 -b v0.39.0 https://github.com/huggingface/diffusers
    export DIFFUSERS_TESTS_DIR=$PWD/diffusers/tests
    # the upstream suites also import these two test-only packages
    pip install parameterized requests_mock
    pytest tests/test_upstream_mixins.py

The sdist of transformers lacks ``tests/generation/`` and ``tests/utils/``, which
``test_modeling_common.py`` and ``test_configuration_common.py`` import for things these models do
not use (``GenerationTesterMixin``) or a table of common config kwargs. When they are absent,
small stand-ins are registered (:func:`_transformers_stand_ins`).

Each ``unittest.skip`` below names why an upstream test does not apply to these models by design.
Last run (transformers 4.57.6, diffusers 0.39.0, CPU only): 128 passed, 0 failed. The skips are the
upstream suites' own (no accelerator, flash-attention, deepspeed, slow tests without RUN_SLOW=1,
no fast image processor, no attention in a CNN, ...) plus the ones below; with RUN_SLOW=1 the
``torch.export`` tests pass too.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import types
import unittest
from pathlib import Path

import pytest
import torch

import tiny_cats  # noqa: F401  (registers the Auto classes)
from tiny_cats import TinyCatsConfig, TinyCatsForImageClassification, TinyCatsImageProcessor
from tiny_cats.classifier.modeling_tiny_cats import TinyCatsModel
from tiny_cats.generator.modeling_tiny_dit import TinyDiTTransformer2DModel
from tiny_cats.generator.pipeline_tiny_dit import TinyDiTPipeline

TRANSFORMERS_TESTS_DIR = os.environ.get("TRANSFORMERS_TESTS_DIR", "")
DIFFUSERS_TESTS_DIR = os.environ.get("DIFFUSERS_TESTS_DIR", "")


def _package(alias: str, root: Path) -> None:
    """Make ``root`` importable as the package ``alias`` (the repo's own ``tests`` package owns that name)."""
    if alias in sys.modules:
        return
    init = root / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(alias, init, submodule_search_locations=[str(root)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module
        spec.loader.exec_module(module)
    else:
        module = types.ModuleType(alias)
        module.__path__ = [str(root)]
        sys.modules[alias] = module


def _stand_in(name: str, **attributes) -> None:
    parent, _, child = name.rpartition(".")
    if parent not in sys.modules:
        _stand_in(parent)
        sys.modules[parent].__path__ = []
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    setattr(sys.modules[parent], child, module)


def _transformers_stand_ins(alias: str, root: Path) -> None:
    """Stand-ins for the two modules the transformers sdist leaves out (used only when absent)."""
    if not (root / "generation" / "test_utils.py").is_file():

        class GenerationTesterMixin:  # the tiny-cats models do not generate
            pass

        _stand_in(f"{alias}.generation.test_utils", GenerationTesterMixin=GenerationTesterMixin)
    if not (root / "utils" / "test_configuration_utils.py").is_file():
        # Every PretrainedConfig attribute with a non-default value: ConfigTester.check_config_arguments_init
        # passes them all to the config and reads them back.
        common = {
            "return_dict": False, "output_hidden_states": True, "output_attentions": True, "torchscript": True,
            "dtype": "float16", "tie_word_embeddings": False, "chunk_size_feed_forward": 5, "is_decoder": True,
            "cross_attention_hidden_size": 128, "add_cross_attention": True, "tie_encoder_decoder": True,
            "architectures": ["BertModel"], "finetuning_task": "translation", "id2label": {0: "label"},
            "label2id": {"label": "0"}, "tokenizer_class": "BertTokenizerFast", "prefix": "prefix",
            "bos_token_id": 6, "pad_token_id": 7, "eos_token_id": 8, "sep_token_id": 9, "decoder_start_token_id": 10,
            "task_specific_params": {"translation": "some_params"}, "problem_type": "regression",
            # generation settings PretrainedConfig still loads in 4.x (``temperature`` is also ours)
            "max_length": 50, "min_length": 3, "do_sample": True, "early_stopping": True, "num_beams": 3,
            "temperature": 2.0, "top_k": 10, "top_p": 0.7, "typical_p": 0.2, "repetition_penalty": 0.8,
            "length_penalty": 0.8, "no_repeat_ngram_size": 5, "encoder_no_repeat_ngram_size": 5,
            "bad_words_ids": [1, 2, 3], "num_return_sequences": 3, "output_scores": True,
            "return_dict_in_generate": True, "forced_bos_token_id": 2, "forced_eos_token_id": 3,
            "remove_invalid_values": True, "exponential_decay_length_penalty": (5, 1.01), "suppress_tokens": [0, 1],
            "begin_suppress_tokens": 2, "num_beam_groups": 3, "diversity_penalty": 0.5,
        }
        _stand_in(f"{alias}.utils.test_configuration_utils", config_common_kwargs=common)


def _load_transformers():
    if not TRANSFORMERS_TESTS_DIR:
        return None
    import transformers.utils

    root = Path(TRANSFORMERS_TESTS_DIR)
    _package("transformers_tests", root)
    _transformers_stand_ins("transformers_tests", root)
    # test_configuration_common.py runs direct_transformers_import(<its folder>), which needs the
    # folder's __init__.py (absent from the sdist); the installed transformers is what it stands for.
    original = transformers.utils.direct_transformers_import
    if not (root / "__init__.py").is_file():
        transformers.utils.direct_transformers_import = lambda *args, **kwargs: importlib.import_module("transformers")
    try:
        return types.SimpleNamespace(
            modeling=importlib.import_module("transformers_tests.test_modeling_common"),
            configuration=importlib.import_module("transformers_tests.test_configuration_common"),
            image_processing=importlib.import_module("transformers_tests.test_image_processing_common"),
        )
    finally:
        transformers.utils.direct_transformers_import = original


def _load_diffusers():
    if not DIFFUSERS_TESTS_DIR:
        return None
    import diffusers.utils.import_utils as diffusers_imports

    # diffusers 0.39 takes any "optimum" distribution (here optimum-onnx) for optimum-quanto, and its
    # quantization test helpers then import optimum.quanto; say what is actually installed.
    if importlib.util.find_spec("optimum") is not None and importlib.util.find_spec("optimum.quanto") is None:
        diffusers_imports._optimum_quanto_available = False
    _package("diffusers_tests", Path(DIFFUSERS_TESTS_DIR))
    return types.SimpleNamespace(
        models=importlib.import_module("diffusers_tests.models.testing_utils"),
        pipelines=importlib.import_module("diffusers_tests.pipelines.test_pipelines_common"),
    )


HF = _load_transformers()
DF = _load_diffusers()
needs_transformers = unittest.skipUnless(HF, "set TRANSFORMERS_TESTS_DIR to transformers' tests/ folder")
needs_diffusers = pytest.mark.skipif(DF is None, reason="set DIFFUSERS_TESTS_DIR to diffusers' tests/ folder")

NOT_A_TRANSFORMER = "a CNN: no attention, no token embeddings, no attention heads"
FIXED_ARCHITECTURE = "fixed architectures (the config picks EfficientNet-Lite0 or ResNet-18, not a width): 3.4M/11M parameters"


# ------------------------------------------------------------------------------------------- transformers


class TinyCatsModelTester:
    """Builds configs and inputs for transformers' ``ModelTesterMixin``."""

    def __init__(self, parent, backbone="efficientnet_lite0", batch_size=2, image_size=32, num_labels=3):
        self.parent = parent
        self.backbone = backbone
        self.batch_size = batch_size
        self.image_size = image_size
        self.num_channels = 3
        self.num_labels = num_labels
        self.is_training = True
        # stem + one feature map per stage
        self.num_hidden_states = 8 if backbone == "efficientnet_lite0" else 5

    def get_config(self):
        return TinyCatsConfig(backbone=self.backbone, image_size=self.image_size, num_labels=self.num_labels)

    def prepare_config_and_inputs(self):
        pixel_values = HF.modeling.floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        labels = HF.modeling.ids_tensor([self.batch_size], self.num_labels)
        return self.get_config(), pixel_values, labels

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values, _ = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values}


def _mixin(namespace, module, name):
    """The upstream class, or an empty stand-in of that name when its sources are not configured."""
    return getattr(getattr(namespace, module), name) if namespace else type(name, (), {})


@needs_transformers
class TinyCatsEfficientNetModelTest(_mixin(HF, "modeling", "ModelTesterMixin"), unittest.TestCase):
    backbone = "efficientnet_lite0"
    all_model_classes = (TinyCatsModel, TinyCatsForImageClassification)
    has_attentions = False
    test_pruning = False
    test_resize_embeddings = False
    test_head_masking = False
    test_torch_exportable = True

    @classmethod
    def setUpClass(cls):
        """Name our classes in the tables that in-tree models are listed in: the mixin picks the base model
        (no training loss) and the image classifier (integer labels) by those names."""
        super().setUpClass()
        from transformers.models.auto import modeling_auto

        cls._tables = [(modeling_auto.MODEL_MAPPING_NAMES, "TinyCatsModel"),
                       (modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES, "TinyCatsForImageClassification")]
        for table, name in cls._tables:
            table["tiny_cats"] = name

    @classmethod
    def tearDownClass(cls):
        for table, _ in cls._tables:
            table.pop("tiny_cats", None)
        super().tearDownClass()

    def setUp(self):
        self.model_tester = TinyCatsModelTester(self, backbone=self.backbone)
        self.config_tester = HF.configuration.ConfigTester(self, config_class=TinyCatsConfig, has_text_modality=False,
                                                           common_properties=["num_channels", "image_size"])

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        config, pixel_values, _ = self.model_tester.prepare_config_and_inputs()
        model = TinyCatsModel(config).eval()
        with torch.no_grad():
            out = model(pixel_values)
        width = 1280 if self.backbone == "efficientnet_lite0" else 512
        self.assertEqual(out.last_hidden_state.shape, (2, width, 1, 1))
        self.assertEqual(out.pooler_output.shape, (2, width))

    def test_for_image_classification(self):
        config, pixel_values, labels = self.model_tester.prepare_config_and_inputs()
        model = TinyCatsForImageClassification(config).eval()
        out = model(pixel_values, labels=labels)
        self.assertEqual(out.logits.shape, (2, self.model_tester.num_labels))
        self.assertEqual(out.loss.shape, ())

    def test_hidden_states_output(self):
        """Like ResNet's own override: one feature map per stage (stem first), via the argument or the config."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            for via_config in (False, True):
                config.output_hidden_states = via_config
                model = model_class(config).eval()
                kwargs = {} if via_config else {"output_hidden_states": True}
                with torch.no_grad():
                    hidden_states = model(**inputs, **kwargs).hidden_states
                self.assertEqual(len(hidden_states), self.model_tester.num_hidden_states)
                self.assertEqual(list(hidden_states[0].shape[-2:]), [self.model_tester.image_size // 2] * 2
                                 if self.backbone == "efficientnet_lite0" else [self.model_tester.image_size // 4] * 2)

    def test_initialization(self):
        """ResNet's override: BatchNorm starts as the identity (the generic test zeroes initializer ranges)."""
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            for name, module in model.named_modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    self.assertTrue(torch.all(module.weight == 1), name)
                    self.assertTrue(torch.all(module.bias == 0), name)

    def test_forward_signature(self):
        for model_class in self.all_model_classes:
            names = list(inspect.signature(model_class.forward).parameters)
            self.assertEqual(names[1], "pixel_values")

    @unittest.skip(FIXED_ARCHITECTURE)
    def test_model_is_small(self):
        pass

    @unittest.skip(NOT_A_TRANSFORMER)
    def test_inputs_embeds(self):
        pass

    @unittest.skip(NOT_A_TRANSFORMER)
    def test_inputs_embeds_matches_input_ids(self):
        pass

    @unittest.skip(NOT_A_TRANSFORMER)
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skip(NOT_A_TRANSFORMER)
    def test_model_common_attributes(self):
        pass


@needs_transformers
class TinyCatsResNet18ModelTest(TinyCatsEfficientNetModelTest):
    backbone = "resnet18"


class TinyCatsImageProcessingTester:
    """Images and shapes for transformers' ``ImageProcessingTestMixin``."""

    def __init__(self, batch_size=3, num_channels=3, min_resolution=30, max_resolution=80, size=18):
        self.batch_size = batch_size
        self.num_channels = num_channels
        self.min_resolution = min_resolution
        self.max_resolution = max_resolution
        self.size = {"height": size, "width": size}

    def prepare_image_processor_dict(self):
        return {"size": self.size, "image_mean": [0.4, 0.5, 0.6], "image_std": [0.3, 0.2, 0.1], "do_resize": True,
                "do_normalize": True}

    def expected_output_image_shape(self, images):
        return 3, self.size["height"], self.size["width"]  # every image becomes RGB, by design

    def prepare_image_inputs(self, equal_resolution=False, numpify=False, torchify=False):
        return HF.image_processing.prepare_image_inputs(
            batch_size=self.batch_size, num_channels=self.num_channels, min_resolution=self.min_resolution,
            max_resolution=self.max_resolution, equal_resolution=equal_resolution, numpify=numpify, torchify=torchify)


@needs_transformers
class TinyCatsImageProcessingTest(_mixin(HF, "image_processing", "ImageProcessingTestMixin"), unittest.TestCase):
    image_processing_class = TinyCatsImageProcessor
    test_cast_dtype = True

    def setUp(self):
        super().setUp()
        self.image_processor_tester = TinyCatsImageProcessingTester()

    @property
    def image_processor_dict(self):
        return self.image_processor_tester.prepare_image_processor_dict()

    def test_image_processor_properties(self):
        processor = self.image_processing_class(**self.image_processor_dict)
        for name in ("do_resize", "size", "resample", "do_rescale", "rescale_factor", "do_normalize", "image_mean",
                     "image_std"):
            self.assertTrue(hasattr(processor, name), name)

    def test_image_processor_from_dict_with_kwargs(self):
        processor = self.image_processing_class.from_dict(self.image_processor_dict)
        self.assertEqual(processor.size, {"height": 18, "width": 18})
        processor = self.image_processing_class.from_dict(self.image_processor_dict, size=42)
        self.assertEqual(processor.size, {"height": 42, "width": 42})


# ------------------------------------------------------------------------------------------- diffusers


class TinyDiTTesterConfig:
    """What diffusers' pytest-style model mixins need (their ``BaseModelTesterConfig`` contract)."""

    @property
    def model_class(self):
        return TinyDiTTransformer2DModel

    @property
    def main_input_name(self):
        return "sample"

    @property
    def input_shape(self):
        return (3, 16, 16)

    @property
    def output_shape(self):
        return (3, 16, 16)

    @property
    def generator(self):
        return torch.Generator("cpu").manual_seed(0)

    def get_init_dict(self):
        return {"sample_size": 16, "patch_size": 4, "hidden_size": 32, "num_layers": 3, "num_attention_heads": 2,
                "num_classes": 4, "long_skip": True, "final_conv": True}

    def get_dummy_inputs(self, batch_size: int = 2):
        generator = self.generator
        return {
            "sample": torch.randn((batch_size, 3, 16, 16), generator=generator),
            "timestep": torch.randint(0, 1000, (batch_size,), generator=generator).float(),
            "class_labels": torch.randint(0, 4, (batch_size,), generator=generator),
        }


def _df(module, name):
    return _mixin(DF, module, name)


@needs_diffusers
class TestTinyDiTTransformerUpstream(TinyDiTTesterConfig, _df("models", "BaseModelTesterConfig"),
                                     _df("models", "ModelTesterMixin")):
    pass


@needs_diffusers
class TestTinyDiTTransformerTrainingUpstream(TinyDiTTesterConfig, _df("models", "BaseModelTesterConfig"),
                                             _df("models", "TrainingTesterMixin")):
    def test_gradient_checkpointing_is_applied(self):
        super().test_gradient_checkpointing_is_applied(expected_set={"TinyDiTTransformer2DModel"})


class TinyDiTPipelineUpstreamTest(_df("pipelines", "PipelineTesterMixin"), unittest.TestCase):
    pipeline_class = TinyDiTPipeline
    params = frozenset(["breed", "guidance_scale"]) if DF else frozenset()
    batch_params = frozenset(["breed"])
    required_optional_params = frozenset(["num_inference_steps", "generator", "latents", "output_type", "return_dict",
                                          "callback_on_step_end", "callback_on_step_end_tensor_inputs"])
    callback_cfg_params = frozenset()
    test_attention_slicing = False  # no attention processors: SDPA in plain torch
    test_xformers_attention = False

    def setUp(self):
        if DF is None:
            self.skipTest("set DIFFUSERS_TESTS_DIR to diffusers' tests/ folder")
        super().setUp()

    def get_dummy_components(self):
        from diffusers import FlowMatchEulerDiscreteScheduler

        torch.manual_seed(0)
        transformer = TinyDiTTransformer2DModel(sample_size=16, patch_size=4, hidden_size=32, num_layers=2,
                                                num_attention_heads=2)
        for param in transformer.parameters():  # adaLN-Zero starts at zero; make the output depend on inputs
            torch.nn.init.normal_(param, std=0.05)
        return {"transformer": transformer.eval(), "scheduler": FlowMatchEulerDiscreteScheduler()}

    def get_dummy_inputs(self, device, seed=0):
        generator = torch.Generator(device="cpu").manual_seed(seed)
        return {"breed": "Bengal", "generator": generator, "num_inference_steps": 2, "output_type": "np"}


@needs_diffusers
class TestTinyDiTTransformerMemoryUpstream(TinyDiTTesterConfig, _df("models", "BaseModelTesterConfig"),
                                           _df("models", "MemoryTesterMixin")):
    pass
