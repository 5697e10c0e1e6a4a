"""The one description of where every artefact lives, read by export, evaluation, publishing
and the web app. Paths are relative to a model package folder (the Hub repo root).

A tiny-cats model package serves both one-line usages from the same repo:
- classifier at the root: ``config.json``, ``model.safetensors``, ``preprocessor_config.json``
  and the remote-code files, so ``pipeline("image-classification", model=REPO)`` works;
- generator as a diffusers pipeline: ``model_index.json`` at the root with ``transformer/``
  and ``scheduler/`` folders, so ``DiffusionPipeline.from_pretrained(REPO, trust_remote_code=True)``
  and ``TinyDiTPipeline.from_pretrained(REPO)`` work.

The whole Hub repo (``tiny-cats publish`` builds it with ``tiny_cats.hub_package.build_package``
and uploads it as one commit)::

    README.md                      model card, rendered from hub_templates/model_card.md.j2
    config.json  model.safetensors  preprocessor_config.json
    configuration_tiny_cats.py  modeling_tiny_cats.py  image_processing_tiny_cats.py
    onnx_config_tiny_cats.py  labels.py          the classifier's remote code (tiny_cats/classifier/)
    model_index.json               the diffusers pipeline ...
    pipeline_tiny_dit.py  modeling_tiny_dit.py   its remote code (tiny_cats/generator/)
    transformer/                   config.json, diffusion_pytorch_model.safetensors, modeling_tiny_dit.py
    scheduler/                     scheduler_config.json
    training_results/              classifier.json, generator.json: each model folder's
                                   training_results.json, renamed because the two names collide
    evaluation/  benchmarks/       the JSON (and PNG) results; absent when not measured
    onnx/                          the ONNX exports and manifest; absent when not exported
    examples/                      the model card's usage snippets as runnable scripts

A file name present in both model folders must have identical content, else building fails.
"""

# The Hub model repo `tiny-cats publish` uploads to by default.
DEFAULT_REPO_ID = "d4oit/tiny-cats-model"

# ONNX exports (issue: export). The denoiser takes (sample, timestep, class_labels) and returns
# the velocity; guidance and the scheduler stay outside the graph.
ONNX_DIR = "onnx"
CLASSIFIER_ONNX = "onnx/model.onnx"
CLASSIFIER_ONNX_INT8 = "onnx/model_quantized.onnx"
GENERATOR_ONNX = "onnx/transformer.onnx"
GENERATOR_ONNX_INT8 = "onnx/transformer_quantized.onnx"
ONNX_MANIFEST = "onnx/manifest.json"  # shapes, labels, normalisation, scheduler settings for the browser

# Evaluation and benchmark results (JSON documents the model card renders).
EVALUATION_DIR = "evaluation"
CLASSIFIER_EVALUATION = "evaluation/classifier.json"
CLASSIFIER_CONFUSION_PNG = "evaluation/confusion_matrix.png"
GENERATOR_EVALUATION = "evaluation/generator.json"
GENERATOR_GRID_PNG = "evaluation/grid_all_breeds.png"
GENERATOR_BREED_GRIDS_DIR = "evaluation/grids"
GENERATOR_NEIGHBOURS_PNG = "evaluation/nearest_training_photos.png"  # memorisation check
BENCHMARK_DIR = "benchmarks"
INFERENCE_BENCHMARK = "benchmarks/inference.json"

# Model package / Hub repo (issue: publish).
MODEL_CARD = "README.md"
EXAMPLES_DIR = "examples"
TRAINING_RESULTS = "training_results.json"  # what the training scripts write into each model folder
CLASSIFIER_TRAINING_RESULTS = "training_results/classifier.json"
GENERATOR_TRAINING_RESULTS = "training_results/generator.json"
CLASSIFIER_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
GENERATOR_FILES = (
    "model_index.json",
    "pipeline_tiny_dit.py",
    "modeling_tiny_dit.py",
    "transformer/config.json",
    "transformer/diffusion_pytorch_model.safetensors",
    "transformer/modeling_tiny_dit.py",
    "scheduler/scheduler_config.json",
)
