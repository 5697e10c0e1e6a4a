"""JSON schemas of the evaluation and benchmark documents, and the atomic writer that checks them.

The model card, the web app and the publishing step read these files, so a document that
lacks a key or holds a wrong type must fail where it is made, not where it is rendered.
Schemas are plain JSON-Schema dicts restricted to a small subset (``type``, ``required``,
``properties``, ``additionalProperties``, ``items``, ``enum``, ``minimum``, ``maximum``,
``minItems``), checked by the built-in :func:`validate`, which refuses a schema that uses any
other keyword rather than ignore it. Built in rather than the ``jsonschema`` package because a
plain install (no extras) validates too: ``evaluate-classifier`` and ``benchmark`` check what they
write, and ``publish`` checks the documents it uploads.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..files import write_text

SCHEMA_VERSION = 1

# ----------------------------------------------------------------------------- building blocks

NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
RATIO = {"type": "number", "minimum": 0, "maximum": 1}
COUNT = {"type": "integer", "minimum": 0}
NON_NEGATIVE = {"type": "number", "minimum": 0}


def obj(properties: Dict[str, Any], required: Optional[List[str]] = None, extra: bool = True) -> Dict[str, Any]:
    """An object schema; every listed property is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": extra,
    }


def array(items: Dict[str, Any], min_items: int = 0) -> Dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items}


def mapping(values: Dict[str, Any]) -> Dict[str, Any]:
    """An object with free keys (breed or class names) whose values share one schema."""
    return {"type": "object", "additionalProperties": values}


def nullable(schema: Dict[str, Any]) -> Dict[str, Any]:
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return {**schema, "type": types + ["null"]}


def document(kind: str, properties: Dict[str, Any], optional: Sequence[str] = ()) -> Dict[str, Any]:
    """A top-level document: ``schema_version``, ``kind`` and ``created_utc``, then ``properties``
    (all required but the ``optional`` ones: fields added later, absent from older documents)."""
    header = {
        "schema_version": {"type": "integer", "enum": [SCHEMA_VERSION]},
        "kind": {"type": "string", "enum": [kind]},
        "created_utc": STRING,
    }
    return obj({**header, **properties}, required=[k for k in {**header, **properties} if k not in optional])


# ----------------------------------------------------------------------------- documents

PER_CLASS = obj({"precision": RATIO, "recall": RATIO, "f1": RATIO, "support": COUNT})

CLASSIFIER_SCHEMA = document(
    "classifier_evaluation",
    {
        "model": STRING,
        "data_source": STRING,
        "split": STRING,
        "num_images": COUNT,
        "limit": nullable(COUNT),
        "files_list": STRING,  # paths relative to the package (output) folder, as in layout.py
        "metrics": obj(
            {
                "num_samples": COUNT,
                "label_names": array(STRING, 1),
                "accuracy": RATIO,
                "macro_precision": RATIO,
                "macro_recall": RATIO,
                "macro_f1": RATIO,
                "per_class": mapping(PER_CLASS),
                "confusion_matrix": array(array(COUNT)),
                "most_confused_pairs": array(obj({"pair": array(STRING, 2), "count": COUNT, "a_as_b": COUNT,
                                                 "b_as_a": COUNT})),
                "cat_vs_not_cat_accuracy": nullable(RATIO),
                "ece": RATIO,
                "ece_bins": COUNT,
            }
        ),
        "cats_only": obj({"num_images": COUNT, "top1_12way": nullable(RATIO), "top1_13way": nullable(RATIO)}),
        "confusion_matrix_png": STRING,
        "batch_size": COUNT,
        "seconds": NON_NEGATIVE,
        # ONNX evaluations only: top-1 agreement with the PyTorch files list of the same photos (null: none)
        "agreement_with_pytorch": nullable(obj({"reference": STRING, "num_images": COUNT, "num_different": COUNT,
                                                "same_top1": RATIO, "different_files": array(STRING)})),
    },
    optional=["agreement_with_pytorch"],
)

GENERATOR_SCHEMA = document(
    "generator_evaluation",
    {
        "model": STRING,
        "classifier": STRING,
        "data_source": STRING,
        "settings": obj(
            {
                "samples_per_breed": COUNT,
                "num_inference_steps": COUNT,
                "guidance_scale": NUMBER,
                "seed": INTEGER,
                "batch_size": COUNT,
            }
        ),
        "resolution": obj(
            {
                "generated": COUNT,
                "real_compared_at": COUNT,
                "real_resize": STRING,
                "feature_extractor_input": nullable(COUNT),  # null: an injected extractor
            }
        ),
        "feature_extractor": STRING,
        "num_generated": COUNT,
        "num_real": COUNT,
        "fid": NUMBER,
        "kid_mean": NUMBER,
        "kid_std": NUMBER,
        "kid_subsets": COUNT,
        "kid_subset_size": COUNT,
        "precision": RATIO,
        "recall": RATIO,
        "precision_recall_k": COUNT,
        "breed_accuracy": obj({"overall": RATIO, "judged_not_a_cat": RATIO, "per_breed": mapping(RATIO)}),
        "classifier_based_score": NUMBER,
        # Two disjoint sets of real cats, the first as large as the generated set (null: too few real cats).
        "real_vs_real_floor": nullable(obj({"num_real_a": COUNT, "num_real_b": COUNT, "fid_real_a_vs_real_b": NUMBER,
                                            "fid_generated_vs_real_b": NUMBER})),
        # Nearest training photos in feature space (null: no training record beside the model).
        "memorisation": nullable(obj({"feature_space": STRING, "num_training_photos": COUNT,
                                      "num_held_back_photos": COUNT, "held_back": STRING,
                                      "mean_nn_distance_generated": NUMBER,
                                      "mean_nn_distance_held_back_real": nullable(NUMBER), "ratio": nullable(NUMBER)})),
        "reference_cache": obj({"path": STRING, "reused": BOOLEAN, "num_files": COUNT}),
        "grids": obj({"all_breeds": STRING, "per_breed": mapping(STRING)}),
        "seconds": obj({"generation": NON_NEGATIVE, "features": NON_NEGATIVE, "total": NON_NEGATIVE}),
        "notes": array(STRING),
    },
    optional=("real_vs_real_floor", "memorisation"),
)

LATENCY = obj(
    {
        "batch_size": COUNT,
        "repeats": COUNT,
        "warmup": COUNT,
        "p50_ms": NON_NEGATIVE,
        "p95_ms": NON_NEGATIVE,
        "p99_ms": NON_NEGATIVE,
        "mean_ms": NON_NEGATIVE,
        "min_ms": NON_NEGATIVE,
        "throughput_per_s": NON_NEGATIVE,
    }
)
MEMORY = obj(
    {
        "rss_baseline_mb": NUMBER,
        "rss_peak_delta_mb": NUMBER,
        "rss_end_delta_mb": NUMBER,
        "tracemalloc_peak_mb": NON_NEGATIVE,
    }
)
CLASSIFIER_RUNTIME = obj(
    {
        "runtime": {"type": "string", "enum": ["pytorch_eager", "onnxruntime_fp32", "onnxruntime_int8"]},
        "model_path": STRING,
        "load_seconds": NON_NEGATIVE,
        "memory": MEMORY,
        "batches": array(LATENCY, 1),
        "skipped_batch_sizes": mapping(STRING),
    }
)
GENERATOR_RUN = obj(
    {
        "num_inference_steps": COUNT,
        "guidance_scale": NUMBER,
        "classifier_free_guidance": BOOLEAN,
        "per_image": LATENCY,
        "per_step_ms": NON_NEGATIVE,
    }
)

BENCHMARK_SCHEMA = document(
    "inference_benchmark",
    {
        "seed": INTEGER,
        "environment": obj(
            {
                "cpu_model": STRING,
                "physical_cores": nullable(COUNT),
                "logical_cores": nullable(COUNT),
                "threads": COUNT,
                "python": STRING,
                "platform": STRING,
                "torch": STRING,
                "onnxruntime": nullable(STRING),
            }
        ),
        "classifier": nullable(
            obj({"image_size": COUNT, "measures": STRING, "runtimes": array(CLASSIFIER_RUNTIME)})
        ),
        "generator": nullable(
            obj(
                {
                    "model_path": STRING,
                    "resolution": COUNT,
                    "load_seconds": NON_NEGATIVE,
                    "memory": MEMORY,
                    "runs": array(GENERATOR_RUN),
                }
            )
        ),
        "skipped": mapping(STRING),
    }
)

SCHEMAS = {"classifier": CLASSIFIER_SCHEMA, "generator": GENERATOR_SCHEMA, "benchmark": BENCHMARK_SCHEMA}


# ----------------------------------------------------------------------------- validation


class SchemaValidationError(ValueError):
    """A document does not match its schema; the message names the JSON path."""


KEYWORDS = frozenset({"type", "required", "properties", "additionalProperties", "items", "enum", "minimum",
                      "maximum", "minItems"})


def _unsupported_keywords(schema: Dict[str, Any], path: str = "$") -> List[str]:
    """Keywords of ``schema`` (and of its sub-schemas) that :func:`validate` does not check."""
    found = [f"{path}: {key!r}" for key in sorted(set(schema) - KEYWORDS)]
    subschemas = [(f"{path}.{key}", sub) for key, sub in schema.get("properties", {}).items()]
    subschemas += [(f"{path}[]", schema.get("items")), (f"{path}.*", schema.get("additionalProperties"))]
    for where, sub in subschemas:
        if isinstance(sub, dict):
            found += _unsupported_keywords(sub, where)
    return found


def _type_ok(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise ValueError(f"schema uses unsupported type {name!r}")


def _errors(value: Any, schema: Dict[str, Any], path: str) -> List[str]:
    """Every violation of ``schema`` by ``value``, as 'path: reason' strings."""
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        if not any(_type_ok(value, t) for t in types):
            return [f"{path}: expected {' or '.join(types)}, got {type(value).__name__}"]
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{path}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{path}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, dict):
        found.extend(_object_errors(value, schema, path))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{path}: needs at least {schema['minItems']} item(s), has {len(value)}")
        if "items" in schema:
            for i, item in enumerate(value):
                found.extend(_errors(item, schema["items"], f"{path}[{i}]"))
    return found


def _object_errors(value: Dict[str, Any], schema: Dict[str, Any], path: str) -> List[str]:
    found = [f"{path}: missing required key {key!r}" for key in schema.get("required", []) if key not in value]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            found.extend(_errors(item, properties[key], f"{path}.{key}"))
        elif extra is False:
            found.append(f"{path}: unexpected key {key!r}")
        elif isinstance(extra, dict):
            found.extend(_errors(item, extra, f"{path}.{key}"))
    return found


def _non_finite(value: Any, path: str) -> List[str]:
    """NaN/inf are not JSON: ``json.dumps`` would write tokens other readers reject."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path}: {value} is not a finite number"]
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in _non_finite(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _non_finite(v, f"{path}[{i}]")]
    return []


def validate(doc: Any, schema: Dict[str, Any]) -> None:
    """Raise :class:`SchemaValidationError` unless ``doc`` matches ``schema`` and is finite.

    A schema using a keyword outside the supported subset is a programming error (``TypeError``).
    """
    unsupported = _unsupported_keywords(schema)
    if unsupported:
        raise TypeError(f"schema keywords not supported by tiny_cats.evaluation.schemas: {', '.join(unsupported)}")
    found = _non_finite(doc, "$") + _errors(doc, schema, "$")
    if found:
        raise SchemaValidationError(f"{len(found)} schema error(s): " + "; ".join(found[:10]))


def write_json(doc: Dict[str, Any], path: os.PathLike, schema: Dict[str, Any]) -> Path:
    """Validate, then write via a temp file and ``os.replace``: readers never see half a file."""
    validate(doc, schema)
    return write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", path)
