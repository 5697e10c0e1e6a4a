"""``tiny-cats export``: both models to ONNX (fp32 + int8) with a manifest; see :mod:`tiny_cats.onnx.export`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from ..layout import ONNX_MANIFEST
from .common import CommandError, add_model_option, extra_hint, require_extra


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help=f"export both models to ONNX (fp32 + int8) with a manifest ({extra_hint('onnx')})",
        allow_abbrev=False,
        description="Write onnx/model*.onnx, onnx/transformer*.onnx and onnx/manifest.json under --output; a model "
        f"left out keeps its previous files and manifest section. This command {extra_hint('onnx')}.")
    add_model_option(p, "classifier")
    add_model_option(p, "generator")
    p.add_argument("--no-classifier", action="store_true", help="export the generator only")
    p.add_argument("--no-generator", action="store_true", help="export the classifier only")
    p.add_argument("--output", default=".", help="model package root; files go to OUTPUT/onnx/ (default: .)")
    p.add_argument("--no-quantize", action="store_true", help="skip the int8 files")
    p.add_argument("--calibration-data",
                   help="Oxford-IIIT Pet folder or Hub id whose training photos calibrate the int8 classifier "
                   "(default: $TINY_CATS_DATA or the shared copy)")
    p.set_defaults(run=run)


def print_summary(manifest: dict, sections: Sequence[str]) -> None:
    for section in sections:
        for precision, entry in manifest[section]["files"].items():
            checks = ", ".join(f"{k}={v:.3g}" for k, v in entry.items() if isinstance(v, float))
            print(f"{entry['path']:<34} {entry['bytes']:>11,d} bytes  {precision:<5} {checks}")
    print(f"manifest: {ONNX_MANIFEST}")


def run(args) -> int:
    if args.no_classifier and args.no_generator:
        raise CommandError("export: --no-classifier and --no-generator leave nothing to export")
    require_extra("onnx", "export")
    from ..defaults import DEFAULT_CLASSIFIER, DEFAULT_GENERATOR, resolve_model
    from ..onnx.export import export_all

    classifier = None if args.no_classifier else resolve_model(args.classifier, DEFAULT_CLASSIFIER)
    generator = None if args.no_generator else resolve_model(args.generator, DEFAULT_GENERATOR)
    try:
        manifest = export_all(classifier, generator, args.output, quantize=not args.no_quantize,
                              calibration_data=args.calibration_data)
    except RuntimeError as err:  # a failed parity check: nothing was written
        print(f"tiny-cats export: error: {err}", file=sys.stderr)
        return 1
    print(f"exported to {Path(args.output) / 'onnx'}")
    print_summary(manifest, [s for s, skip in (("classifier", args.no_classifier), ("generator", args.no_generator))
                             if not skip])
    return 0
