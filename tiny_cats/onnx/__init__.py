"""The ONNX side of tiny-cats: export both models with Optimum, quantize them to int8, check them
against PyTorch, describe them in a manifest, and run them with ONNX Runtime.

One concern per module; import from the module you need (this package imports nothing itself, so
that the ``tiny-cats`` CLI and ``import tiny_cats`` stay cheap):

- :mod:`tiny_cats.onnx.convert`: one model to one fp32 ONNX file through Optimum's exporter
  (the ``OnnxConfig`` of each model);
- :mod:`tiny_cats.onnx.quantize`: int8 quantization settings and calibration photos;
- :mod:`tiny_cats.onnx.parity`: tolerances and the PyTorch-vs-ONNX checks;
- :mod:`tiny_cats.onnx.manifest`: ``onnx/manifest.json``, the one file the browser app and the Hub read;
- :mod:`tiny_cats.onnx.export`: the whole export (``tiny-cats export``): stage, check, then commit atomically;
- :mod:`tiny_cats.onnx.runtime`: the exported files in ONNX Runtime, from Python.

File paths inside a model package come from :mod:`tiny_cats.layout`.
"""
