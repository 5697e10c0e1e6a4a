"""Score a TinyDiT generator against every real cat photo of the data folder.

Generates ``samples_per_breed`` images for each of the 12 breeds (at the pipeline's default
sampling settings unless told otherwise), then reports FID, KID and improved precision/recall
(k=3) on Inception pool3 features, a like-for-like real-vs-real floor, a memorisation check
(nearest training photos in feature space), how often a breed classifier recognises the asked
breed and a classifier-based IS analogue. Writes ``evaluation/generator.json``, one grid per
breed under ``evaluation/grids/``, the overall ``evaluation/grid_all_breeds.png`` and
``evaluation/nearest_training_photos.png``.

Real images are squashed to the generator's square resolution with bicubic filtering (as the
generator's training data was) before Inception upsamples both sets to 299 px, so the metric
compares like with like instead of penalising the generator for its resolution. Their features
are cached per resolution in ``cache_dir`` with the list of files, and reused while the file
list and settings match.

Cost: InceptionV3 takes about 0.25 s per image on a laptop-class CPU. The default of 84 samples
per breed (1,008 generated images; the 2,160 real cats' features are computed once and cached)
is what the release targets are measured at. FID is biased upward at small N (its bias shrinks roughly like 1/N), so
FID values are comparable only between runs with the same sample counts; KID is unbiased.
"""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .. import layout
from ..classifier.image_processing_tiny_cats import pil_to_rgb
from ..classifier.labels import CAT_BREEDS, LABELS
from ..defaults import pipeline_defaults
from .common import (
    chunks,
    load_classifier_model,
    load_pipeline,
    predict_probs,
    resolve_data_source,
    save_png,
    utc_now,
    write_atomically,
)
from .generative_metrics import (
    classifier_based_score,
    compute_fid_kid,
    load_reference_stats,
    precision_recall,
    save_reference_stats,
)
from .inception import INCEPTION_INPUT_SIZE, InceptionFeatureExtractor, extract_features
from .schemas import GENERATOR_SCHEMA, SCHEMA_VERSION, write_json
from .settings import DEFAULT_CACHE_DIR, DEFAULT_SAMPLES_PER_BREED  # defaults shared with the CLI

REAL_RESIZE = "squash to square, PIL bicubic (as in generator training)"
PR_K = 3
NEIGHBOURS = 4  # nearest training photos shown beside each breed's first sample
OVERALL_GRID_COLUMNS = 8
FEATURE_BATCH = 32
NOTES = [
    "FID is biased upward at small sample counts; compare FID only between runs with equal "
    "num_generated and num_real. KID is an unbiased estimate; kid_mean and kid_std are stored raw, not x1000.",
    "Real cats (every cat photo of the data folder, both splits) were resized to the generator's resolution before feature extraction; "
    "both sets are then upsampled to 299 px for InceptionV3.",
    "real_vs_real_floor: FID of two disjoint sets of real cats (the first as large as the generated set) "
    "and the generated set's FID against the same second set: compare those two, like for like.",
    "classifier_based_score is exp(E[KL(p(y|x) || p(y))]) over the tiny-cats classifier's 13-way "
    "softmax, an Inception-Score analogue comparable only between runs judged by the same classifier.",
]


def generate_samples(
    pipe, samples_per_breed: int, steps: int, guidance: float, seed: int, batch_size: int, progress: bool = True,
    **call_kwargs,
) -> Dict[str, List[Image.Image]]:
    """``samples_per_breed`` PIL images per breed; breed i draws its noise from seed ``seed * 100 + i``,
    so one breed's samples do not change when another breed is added or dropped. ``call_kwargs`` go
    to every pipeline call (e.g. ``guidance_interval``)."""
    call = {"num_inference_steps": steps, "guidance_scale": guidance, **call_kwargs}
    pipe.set_progress_bar_config(disable=True)
    breeds = [b for b in CAT_BREEDS if b in pipe.labels]
    samples: Dict[str, List[Image.Image]] = {}
    with tqdm(total=len(breeds) * samples_per_breed, desc="generating", unit="img", disable=not progress) as bar:
        for breed in breeds:
            generator = torch.Generator().manual_seed(seed * 100 + CAT_BREEDS.index(breed))
            images: List[Image.Image] = []
            for count in chunks(range(samples_per_breed), batch_size):
                images += pipe(breed, num_images_per_breed=len(count), generator=generator, **call).images
                bar.update(len(count))
            samples[breed] = images
    return samples


def to_uint8_batch(images: Sequence[Image.Image], size: Optional[int] = None) -> torch.Tensor:
    """PIL images -> uint8 ``(N, 3, H, W)``; with ``size``, squashed to ``size`` x ``size`` (bicubic)."""
    arrays = []
    for image in images:
        image = pil_to_rgb(image)
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.BICUBIC)
        arrays.append(np.asarray(image, dtype=np.uint8))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def extractor_name(extractor: torch.nn.Module) -> str:
    return f"{type(extractor).__name__}({getattr(extractor, 'num_features', '?')}-d)"


def read_cache(path: Path) -> Optional[Dict[str, Any]]:
    """The cached reference, or ``None`` when absent or unreadable (then it is rebuilt)."""
    try:
        return load_reference_stats(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def real_reference(
    source: str, resolution: int, extractor: torch.nn.Module, cache_dir: Path, progress: bool = True
) -> Tuple[np.ndarray, List[str], List[str], Path, bool]:
    """Features of every real cat photo of ``source`` (both splits) at ``resolution``, cached.

    Returns (features, file names, split of each file, cache path, whether the cache was reused).
    The photos are squashed with the generator's own packing (:func:`tiny_cats.data.pack_cats`).
    """
    from ..data import pack_cats

    images, files, splits = [], [], []
    for split in ("train", "test"):
        split_images, _, split_files = pack_cats(source, resolution, splits=(split,))
        images.append(split_images)
        files += list(split_files)
        splits += [split] * len(split_files)
    if len(files) <= PR_K:
        raise ValueError(f"{source}: {len(files)} cat images; need more than {PR_K} for precision/recall")
    # A local folder is keyed by its real path, so "../shared/..." and the absolute default share one cache.
    key = os.path.realpath(source) if os.path.isdir(source) else source
    meta = {"data_source": key, "split": "train+test", "resolution": resolution, "resize": REAL_RESIZE,
            "feature_extractor": extractor_name(extractor)}
    path = cache_dir / f"real_cats_{resolution}px.npz"
    cached = read_cache(path)
    if cached and cached["files"] == files and cached["meta"] == meta:
        return cached["features"], files, splits, path, True
    pixels = torch.from_numpy(np.concatenate(images))
    starts = range(0, len(pixels), FEATURE_BATCH)
    batches = (pixels[i : i + FEATURE_BATCH] for i in starts)
    bar = tqdm(batches, total=len(starts), desc="real features", unit="batch", disable=not progress)
    features = extract_features(bar, extractor).numpy()
    write_atomically(path, lambda tmp: save_reference_stats(tmp, features, files, meta), ".npz")
    return features, files, splits, path, False


def real_vs_real_floor(real: np.ndarray, fake: np.ndarray, seed: int) -> Optional[Dict[str, Any]]:
    """FID of two disjoint sets of real cats, at the generated set's size, and the generated set's
    FID against the same second set: a like-for-like floor (FID is biased by both sample counts).

    ``None`` when fewer than two real photos would be left for the second set.
    """
    order = np.random.default_rng(seed).permutation(len(real))
    first, second = real[order[: len(fake)]], real[order[len(fake) :]]
    if len(first) < len(fake) or len(second) < 2:
        return None
    return {
        "num_real_a": len(first),
        "num_real_b": len(second),
        "fid_real_a_vs_real_b": compute_fid_kid(second, first, compute_kid=False)["fid"],
        "fid_generated_vs_real_b": compute_fid_kid(second, fake, compute_kid=False)["fid"],
    }


def generator_training_split(model: str) -> Optional[Dict[str, Any]]:
    """Which cat photos the generator trained on, from its ``training_results.json`` (local folders only)."""
    results = Path(model) / layout.TRAINING_RESULTS
    if not results.is_file():
        return None
    config = json.loads(results.read_text()).get("config", {})
    splits = tuple(s for s in str(config.get("train_splits", "train")).split(",") if s)
    return {"splits": splits, "holdout_per_breed": int(config.get("holdout_per_breed", 0))}


def memorisation(
    fake: np.ndarray, real: np.ndarray, files: List[str], splits: List[str], training: Dict[str, Any]
) -> Tuple[Dict[str, Any], np.ndarray]:
    """Nearest training photo of every sample and of every held-back real photo, in feature space.

    Held back: the generator's fixed hold-out (``holdout_per_breed``) if it had one, else the real
    photos of the splits it did not train on. If samples sit much closer to the training photos
    than real held-back photos do, the generator copies. Returns the summary and, per sample, the
    indices (into ``files``) of its nearest training photos, closest first.
    """
    from ..data import generator_holdout

    breeds = [f.rsplit("_", 1)[0] for f in files]
    if training["holdout_per_breed"]:
        held = generator_holdout(files, breeds, training["holdout_per_breed"])
        in_training = np.array([f not in held and s in training["splits"] for f, s in zip(files, splits)])
        held_back = np.array([f in held for f in files])
    else:
        in_training = np.array([s in training["splits"] for s in splits])
        held_back = ~in_training
    train_index = np.flatnonzero(in_training)
    train_feats = torch.from_numpy(real[train_index]).double()

    def nearest(queries: np.ndarray, k: int):
        dist = torch.cdist(torch.from_numpy(queries).double(), train_feats)
        values, index = dist.topk(min(k, dist.shape[1]), largest=False)
        return values.numpy(), train_index[index.numpy()]

    fake_dist, fake_nearest = nearest(fake, NEIGHBOURS)
    summary = {"feature_space": "Inception pool3 (L2)", "num_training_photos": int(in_training.sum()),
               "num_held_back_photos": int(held_back.sum()), "held_back": "holdout" if training["holdout_per_breed"]
               else "splits not trained on", "mean_nn_distance_generated": float(fake_dist[:, 0].mean()),
               "mean_nn_distance_held_back_real": None, "ratio": None}
    if held_back.any():
        held_dist, _ = nearest(real[held_back], 1)
        summary["mean_nn_distance_held_back_real"] = float(held_dist[:, 0].mean())
        summary["ratio"] = summary["mean_nn_distance_generated"] / summary["mean_nn_distance_held_back_real"]
    return summary, fake_nearest


def write_neighbours(samples: Dict[str, List[Image.Image]], nearest: np.ndarray, source: str, files: List[str],
                     output_dir: Path) -> str:
    """A row per breed: its first sample, then that sample's nearest training photos (same size)."""
    from ..data import load_pets
    from ..generator.pipeline_tiny_dit import images_to_grid

    pets = load_pets(source)
    by_file = {name: (split, i) for split, rows in pets.items() for i, name in enumerate(rows["file"])}
    side = next(iter(samples.values()))[0].size[0]
    tiles, offset = [], 0
    for images in samples.values():
        tiles.append(images[0])
        for index in nearest[offset][:NEIGHBOURS]:
            split, row = by_file[files[index]]
            photo = pil_to_rgb(pets[split][row]["image"]).resize((side, side), Image.BICUBIC)
            tiles.append(photo)
        offset += len(images)
    save_png(images_to_grid(tiles, columns=NEIGHBOURS + 1), output_dir / layout.GENERATOR_NEIGHBOURS_PNG)
    return layout.GENERATOR_NEIGHBOURS_PNG


def relative_to(path: Path, root: Path) -> str:
    """``path`` relative to the output folder when inside it (as the layout paths are), else absolute."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def breed_accuracy(asked: Sequence[str], probs: np.ndarray) -> Dict[str, Any]:
    """Share of generated images the classifier labels as the asked breed (13-way top-1)."""
    predicted = np.asarray([LABELS[i] for i in probs.argmax(axis=1)])
    asked_arr = np.asarray(asked)
    per_breed = {b: float((predicted[asked_arr == b] == b).mean()) for b in dict.fromkeys(asked)}
    return {
        "overall": float((predicted == asked_arr).mean()),
        "judged_not_a_cat": float((predicted == LABELS[-1]).mean()),
        "per_breed": per_breed,
    }


def write_grids(samples: Dict[str, List[Image.Image]], output_dir: Path) -> Dict[str, Any]:
    """One square-ish grid per breed, and one overall grid (a row per breed, up to 8 samples)."""
    from ..generator.pipeline_tiny_dit import images_to_grid

    per_breed = {}
    for breed, images in samples.items():
        relative = f"{layout.GENERATOR_BREED_GRIDS_DIR}/{breed}.png"
        save_png(images_to_grid(images, columns=math.ceil(math.sqrt(len(images)))), output_dir / relative)
        per_breed[breed] = relative
    columns = min(OVERALL_GRID_COLUMNS, min(len(v) for v in samples.values()))
    rows = [image for images in samples.values() for image in images[:columns]]
    save_png(images_to_grid(rows, columns=columns), output_dir / layout.GENERATOR_GRID_PNG)
    return {"all_breeds": layout.GENERATOR_GRID_PNG, "per_breed": per_breed}


def load_onnx_pipeline(package_dir: str, precision: str):
    """A TinyDiTPipeline whose denoiser is the package's ONNX export (fp32 or int8)."""
    from ..onnx.runtime import load_onnx_generator

    if precision not in ("fp32", "int8"):
        raise ValueError(f"onnx precision must be 'fp32' or 'int8', got {precision!r}")
    relative = layout.GENERATOR_ONNX_INT8 if precision == "int8" else layout.GENERATOR_ONNX
    if not (Path(package_dir) / relative).is_file():
        raise FileNotFoundError(f"{Path(package_dir) / relative}: not exported; run `tiny-cats export` first")
    return load_onnx_generator(package_dir, quantized=precision == "int8"), f"{Path(package_dir) / relative} (ONNX Runtime)"


def evaluate_generator(
    model: Optional[str] = None,
    classifier: Optional[str] = None,
    data: Optional[str] = None,
    output_dir: str = ".",
    samples_per_breed: int = DEFAULT_SAMPLES_PER_BREED,
    steps: Optional[int] = None,
    guidance: Optional[float] = None,
    seed: int = 0,
    batch_size: int = 25,
    cache_dir: Optional[str] = None,
    extractor: Optional[torch.nn.Module] = None,
    progress: bool = True,
    onnx: Optional[str] = None,
) -> Dict[str, Any]:
    """Generate, extract features, score, write the grids and ``generator.json``; returns the document.

    ``steps`` and ``guidance`` default to the pipeline's own defaults. The reference is every real
    cat photo of ``data``; beside the FID against it, the document gives a like-for-like floor (two
    disjoint sets of real cats, the first as large as the generated set) and a memorisation check
    (nearest training photos of the samples vs of held-back real photos; see :func:`memorisation`).

    ``extractor`` replaces InceptionV3 (tests pass a cheap one); it must map uint8
    ``(N, 3, H, W)`` to ``(N, D)`` features. ``onnx`` ("fp32" or "int8") runs the denoiser exported
    under ``model`` (a package folder holding ``onnx/``) in ONNX Runtime instead of PyTorch, so
    quantization's effect on FID is measured with the same tool and settings.
    """
    started = time.perf_counter()
    out = Path(output_dir)
    source = resolve_data_source(data)
    pipe, model_path = load_onnx_pipeline(model or ".", onnx) if onnx else load_pipeline(model)
    net, processor, classifier_path = load_classifier_model(classifier)
    extractor = extractor if extractor is not None else InceptionFeatureExtractor()

    defaults = pipeline_defaults(pipe)
    steps = defaults["num_inference_steps"] if steps is None else steps
    guidance = float(defaults["guidance_scale"] if guidance is None else guidance)
    generation_started = time.perf_counter()
    samples = generate_samples(pipe, samples_per_breed, steps, guidance, seed, batch_size, progress)
    generated_at = time.perf_counter()
    fake_images = [image for images in samples.values() for image in images]
    if len(fake_images) <= PR_K:
        raise ValueError(f"{len(fake_images)} generated images; need more than {PR_K} for precision/recall")
    resolution = fake_images[0].size[0]
    cache = Path(cache_dir) if cache_dir else out / DEFAULT_CACHE_DIR
    real_features, files, splits, cache_path, reused = real_reference(source, resolution, extractor, cache, progress)
    fake_batches = tqdm(list(chunks(fake_images, FEATURE_BATCH)), desc="generated features", disable=not progress)
    fake_features = extract_features((to_uint8_batch(b) for b in fake_batches), extractor).numpy()
    features_done = time.perf_counter()

    input_size = INCEPTION_INPUT_SIZE if isinstance(extractor, InceptionFeatureExtractor) else None
    fid_kid = compute_fid_kid(real_features, fake_features, seed=seed)
    pr = precision_recall(real_features, fake_features, k=PR_K)
    asked = [breed for breed, images in samples.items() for _ in images]
    probs = predict_probs(net, processor, chunks(fake_images, batch_size), len(fake_images), "judging", progress)
    floor = real_vs_real_floor(real_features, fake_features, seed)
    training = None if onnx else generator_training_split(model_path)
    copies, neighbours_png = None, None
    if training is not None:
        copies, nearest = memorisation(fake_features, real_features, files, splits, training)
        neighbours_png = write_neighbours(samples, nearest, source, files, out)

    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": "generator_evaluation",
        "created_utc": utc_now(),
        "model": str(model_path),
        "classifier": str(classifier_path),
        "data_source": source,
        "settings": {"samples_per_breed": samples_per_breed, "num_inference_steps": steps,
                     "guidance_scale": guidance, "seed": seed, "batch_size": batch_size,
                     "guidance_interval": defaults.get("guidance_interval"), "scheduler": type(pipe.scheduler).__name__,
                     "pipeline_defaults": (steps, guidance) == (defaults["num_inference_steps"], defaults["guidance_scale"])},
        "resolution": {"generated": resolution, "real_compared_at": resolution, "real_resize": REAL_RESIZE,
                       "feature_extractor_input": input_size},
        "feature_extractor": extractor_name(extractor),
        "num_generated": fid_kid["n_fake"],
        "num_real": fid_kid["n_real"],
        "fid": fid_kid["fid"],
        "kid_mean": fid_kid["kid_mean"],
        "kid_std": fid_kid["kid_std"],
        "kid_subsets": fid_kid["kid_subsets"],
        "kid_subset_size": fid_kid["kid_subset_size"],
        "precision": pr["precision"],
        "recall": pr["recall"],
        "precision_recall_k": pr["k"],
        "breed_accuracy": breed_accuracy(asked, probs),
        "classifier_based_score": classifier_based_score(probs),
        "real_vs_real_floor": floor,
        "memorisation": copies,
        "reference_cache": {"path": relative_to(cache_path, out), "reused": reused, "num_files": len(files)},
        "grids": {**write_grids(samples, out), "nearest_training_photos": neighbours_png},
        "seconds": {"generation": round(generated_at - generation_started, 3),
                    "features": round(features_done - generated_at, 3),
                    "total": round(time.perf_counter() - started, 3)},
        "notes": NOTES,
    }
    write_json(doc, out / layout.GENERATOR_EVALUATION, GENERATOR_SCHEMA)
    return doc
