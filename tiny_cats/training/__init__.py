"""Small helpers for the training scripts in ``training/``: each script keeps its own loop and calls these.

- :mod:`.config`: the options both scripts share, read from defaults, a YAML file and ``--flags``
- :mod:`.accelerator`: the Accelerator both scripts use; gradient accumulation from a global batch
- :mod:`.loaders`: decoding, DataLoaders and the batches of an epoch, continued exactly on resume
- :mod:`.checkpoints`: atomic checkpoints, ``--resume_from_checkpoint``, where a run stands
- :mod:`.stopping`: SIGTERM / Ctrl-C / launcher death -> checkpoint and exit; one-line errors
- :mod:`.memory`: a step that runs out of memory is redone with its micro-batches in smaller pieces
- :mod:`.reproducibility`: per-step seeding, tensor digests and step traces
- :mod:`.recipes` and :mod:`.calibration`: the classifier's mixup/CutMix, layer-wise learning rates,
  temperature scaling and calibration error
"""
