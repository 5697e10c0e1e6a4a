"""The one description of where every artefact lives, read by export, evaluation, publishing
and the web app. Paths are relative to a model package folder (the Hub repo root).

A tiny-cats model package serves both one-line usages from the same repo:
- classifier at the root: ``config.json``, ``model.safetensors``, ``preprocessor_config.json``
  and the remote-code files, so ``pipeline("image-classification", model=REPO)`` works;
- generator as a diffusers pipeline: ``model_index.json`` at the root with ``transformer/``
  and ``scheduler/`` folders, so ``DiffusionPipeline.from_pretrained(REPO, trust_remote_code=True)``
  and ``TinyDiTPipeline.from_pretrained(REPO)`` work.
"""

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
BENCHMARK_DIR = "benchmarks"
INFERENCE_BENCHMARK = "benchmarks/inference.json"
