"""Default settings of the evaluation commands, standard library only (the CLI's parser reads them)."""

from .. import layout

CLASSIFIER_BATCH_SIZES = (1, 8)
GENERATOR_STEPS = (8, 25, 50)
DEFAULT_SAMPLES_PER_BREED = 84  # 1,008 samples: the release targets' count
DEFAULT_CACHE_DIR = f"{layout.EVALUATION_DIR}/cache"
