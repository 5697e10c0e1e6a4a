"""Choose the generator's sampling defaults by measurement: sampler, timestep shift, steps, guidance.

    python training/sweep_sampler.py --model DIR --samplers euler,heun,dpm++2m,unipc --shifts 1,2,3 --steps 8 --guidance 2,3,4
    python training/sweep_sampler.py --model DIR --samplers euler --steps 4,8,16,50 --guidance 2,3 --intervals none,0-0.7
    python training/sweep_sampler.py --report          # print the table of everything measured so far

Every setting draws the same noise (per breed, seeded as ``tiny-cats evaluate-generator`` does),
makes ``--samples-per-breed`` images per breed, and is scored with the same tools against the
same cached features of every real cat photo: FID, KID, the share the bundled classifier judges
the asked breed and a cat. FID depends on the sample count, so compare rows with equal counts.
Results are kept per setting in ``--output`` (reruns replace a setting's row). ``nfe`` counts
denoiser evaluations per image (2 per step with guidance; fewer outside a guidance interval).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from tiny_cats.files import write_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "benchmarks" / "generator_sampler_sweep.json"


def make_scheduler(name: str, shift: float):
    """A diffusers flow-matching sampler by short name, with a timestep shift (1 = none)."""
    from diffusers import (
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
        FlowMatchHeunDiscreteScheduler,
        UniPCMultistepScheduler,
    )

    flow = dict(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=shift)
    samplers = {
        "euler": lambda: FlowMatchEulerDiscreteScheduler(shift=shift),
        "heun": lambda: FlowMatchHeunDiscreteScheduler(shift=shift),
        "dpm++2m": lambda: DPMSolverMultistepScheduler(**flow),
        "unipc": lambda: UniPCMultistepScheduler(**flow),
    }
    if name not in samplers:
        raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(samplers)}")
    return samplers[name]()


def parse_interval(text: str):
    """'none' -> None (guidance at every step); 'LO-HI' -> (LO, HI) in sigma units."""
    if text == "none":
        return None
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"guidance interval {text!r} is not none or LO-HI")
    lo, hi = (float(v) for v in parts)
    return (lo, hi)


def setting_key(sampler: str, shift: float, steps: int, guidance: float, interval, samples_per_breed: int) -> str:
    band = "all" if interval is None else f"{interval[0]:g}-{interval[1]:g}"
    return f"{sampler} shift={shift:g} steps={steps} cfg={guidance:g} interval={band} n={12 * samples_per_breed}"


def measure(pipe, reference, classifier, args, sampler, shift, steps, guidance, interval) -> dict:
    from tiny_cats.evaluation.common import predict_probs
    from tiny_cats.evaluation.generative_metrics import compute_fid_kid
    from tiny_cats.evaluation.inception import extract_features
    from tiny_cats.evaluation.run_generator_eval import breed_accuracy, generate_samples, to_uint8_batch

    pipe.scheduler = make_scheduler(sampler, shift)
    rows = []
    hook = pipe.transformer.register_forward_pre_hook(lambda module, inputs: rows.append(inputs[0].shape[0]))
    interval_kwargs = {} if interval is None else {"guidance_interval": interval}
    started = time.perf_counter()
    try:
        samples = generate_samples(pipe, args.samples_per_breed, steps, guidance, args.seed, args.batch_size,
                                   progress=False, **interval_kwargs)
    finally:
        hook.remove()
    seconds = time.perf_counter() - started
    images = [image for batch in samples.values() for image in batch]
    features = extract_features(to_uint8_batch(images), args.extractor).numpy()
    scores = compute_fid_kid(reference, features, seed=args.seed, kid_subsets=50)
    net, processor = classifier
    probs = predict_probs(net, processor, [images[i : i + 64] for i in range(0, len(images), 64)], len(images), "judging",
                          progress=False)
    judged = breed_accuracy([breed for breed, batch in samples.items() for _ in batch], probs)
    return {
        "sampler": sampler, "shift": shift, "steps": steps, "guidance_scale": guidance,
        "guidance_interval": list(interval) if interval else None, "num_samples": len(images),
        "nfe": round(sum(rows) / len(images), 2), "seconds_per_image": round(seconds / len(images), 4),
        "fid": round(scores["fid"], 2), "kid": round(scores["kid_mean"], 4),
        "judged_asked_breed": round(judged["overall"], 4), "judged_a_cat": round(1 - judged["judged_not_a_cat"], 4),
    }


def print_table(results: dict) -> None:
    print(f"{'setting':58s} {'nfe':>5s} {'s/img':>6s} {'FID':>7s} {'KID':>7s} {'breed':>6s} {'cat':>6s}")
    for key, r in sorted(results.items(), key=lambda kv: (kv[1]["num_samples"], kv[1]["fid"])):
        print(f"{key:58s} {r['nfe']:5.1f} {r['seconds_per_image']:6.3f} {r['fid']:7.2f} {r['kid']:7.4f} "
              f"{r['judged_asked_breed']:6.3f} {r['judged_a_cat']:6.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--model", help="generator pipeline folder (default: the bundled generator)")
    parser.add_argument("--classifier", help="judging classifier (default: the bundled classifier)")
    parser.add_argument("--data", help="pet data folder (default: ../shared/data/oxford-iiit-pet or $TINY_CATS_DATA)")
    parser.add_argument("--samplers", default="euler", help="comma list of euler, heun, dpm++2m, unipc")
    parser.add_argument("--shifts", default="1", help="comma list of timestep shifts (1 = none)")
    parser.add_argument("--steps", default="8", help="comma list of step counts")
    parser.add_argument("--guidance", default="3", help="comma list of guidance scales")
    parser.add_argument("--intervals", default="none", help="comma list of 'none' or LO-HI sigma bands for guidance")
    parser.add_argument("--samples-per-breed", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=84)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--report", action="store_true", help="only print the table of --output")
    args = parser.parse_args(argv)
    output = Path(args.output)
    previous = json.loads(output.read_text()) if output.is_file() else {"results": {}}
    results = previous["results"]
    if args.report:
        print_table(results)
        return
    try:  # the whole grid is checked before minutes of loading models and real features
        grid = list(itertools.product(args.samplers.split(","), [float(s) for s in args.shifts.split(",")],
                                      [int(s) for s in args.steps.split(",")], [float(g) for g in args.guidance.split(",")],
                                      [parse_interval(i) for i in args.intervals.split(",")]))
        for name in set(args.samplers.split(",")):
            make_scheduler(name, 1.0)
    except ValueError as err:
        parser.error(f"{err} (--samplers, --shifts, --steps, --guidance, --intervals are comma lists; intervals "
                     "are none or LO-HI)")
    if args.threads:
        torch.set_num_threads(args.threads)

    from tiny_cats.evaluation.common import load_classifier_model, load_pipeline, resolve_data_source
    from tiny_cats.evaluation.inception import InceptionFeatureExtractor
    from tiny_cats.evaluation.run_generator_eval import real_reference

    pipe, model_path = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    if results and previous.get("model") != str(model_path):  # its rows' keys do not name the model
        raise SystemExit(f"error: {output} holds the sweep of {previous.get('model')}, not {model_path}: "
                         "pass another --output")
    net, processor, _ = load_classifier_model(args.classifier)
    args.extractor = InceptionFeatureExtractor()
    source = resolve_data_source(args.data)
    side = pipe.transformer.config.sample_size
    reference, *_ = real_reference(source, side, args.extractor, ROOT / "evaluation" / "cache")
    for sampler, shift, steps, guidance, interval in grid:
        key = setting_key(sampler, shift, steps, guidance, interval, args.samples_per_breed)
        results[key] = measure(pipe, reference, (net, processor), args, sampler, shift, steps, guidance, interval)
        print(key, json.dumps(results[key]), flush=True)
        doc = {"what": "generator sampler sweep (training/sweep_sampler.py)", "model": str(model_path),
               "data_source": source, "results": results}
        write_text(json.dumps(doc, indent=2) + "\n", output)
    print_table(results)


if __name__ == "__main__":
    main()
