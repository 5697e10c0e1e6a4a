"""The classifier's recipe options: validation split, calibration, mixup/CutMix, layer decay, RandAugment, epochs."""

import argparse
import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from tiny_cats import TinyCatsConfig, TinyCatsForImageClassification, TinyCatsImageProcessor
from tiny_cats.augmentation import build_train_augmentation
from tiny_cats.data import load_pets
from tiny_cats.training.calibration import classification_metrics, expected_calibration_error, fit_temperature
from tiny_cats.training.config import parse_config
from tiny_cats.training.loaders import make_eval_loader, make_train_loader
from tiny_cats.training.recipes import mix_batch, parameter_groups

from .test_training import TINY_CLASSIFIER, train_classifier


def test_temperature_scaling_undoes_overconfidence():
    """Labels drawn from softmax(z), logits 3z: the fitted temperature is about 3 and the ECE drops."""
    generator = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 13, generator=generator) * 2
    labels = torch.multinomial(true_logits.softmax(-1), 1, generator=generator).squeeze(1)
    temperature = fit_temperature(true_logits * 3, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(true_logits * 3, labels)
    after = expected_calibration_error(true_logits * 3 / temperature, labels)
    assert after < before / 3 and after < 0.03


def test_expected_calibration_error_by_hand():
    """Two images at confidence 0.9 (one right), two at 0.6 (both right): ECE = 0.5 x 0.4 + 0.5 x 0.4."""
    def logits_at(confidence, top):  # two classes: softmax gives `confidence` to class `top`
        margin = math.log(confidence / (1 - confidence))
        return [margin, 0.0] if top == 0 else [0.0, margin]

    logits = torch.tensor([logits_at(0.9, 0), logits_at(0.9, 0), logits_at(0.6, 1), logits_at(0.6, 1)])
    labels = torch.tensor([0, 1, 1, 1])
    assert expected_calibration_error(logits, labels, bins=15) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4, abs=1e-6)
    metrics = classification_metrics(logits, labels, other_id=0, temperature=2.0)  # "cats": the label-1 images
    assert metrics["accuracy"] == 0.75 and metrics["cat_breed_accuracy"] == pytest.approx(2 / 3)
    assert metrics["cat_vs_not_cat_accuracy"] == 0.75  # the second image, a "cat", was called "other"
    assert metrics["num_images"] == 4
    assert metrics["nll_calibrated"] == pytest.approx(F.cross_entropy(logits / 2, labels).item())


def test_mixup_and_cutmix_give_soft_targets_that_match_the_pixels():
    torch.manual_seed(0)
    pixels, labels = torch.rand(8, 3, 16, 16), torch.arange(8) % 4
    same, hard = mix_batch(pixels, labels, 4)
    assert same is pixels and hard is labels  # off: unchanged

    mixed, targets = mix_batch(pixels, labels, 4, mixup_alpha=0.4)
    assert targets.shape == (8, 4) and torch.allclose(targets.sum(-1), torch.ones(8))
    assert not torch.equal(mixed, pixels)

    images = torch.zeros(8, 1, 20, 20) + torch.arange(8).view(8, 1, 1, 1)  # image i is filled with i
    cut, targets = mix_batch(images, torch.arange(8), 8, cutmix_alpha=1.0)
    for i in range(8):
        kept = (cut[i] == i).float().mean().item()  # the share of image i that is still its own
        assert targets[i, i].item() == pytest.approx(kept)


def test_cat_vs_not_loss_adds_the_yes_no_cross_entropy():
    """cat_vs_not_weight w adds w x mean(-log P(cat)) over cats and -log P(other) over the rest, for hard
    labels and for mixup's soft targets alike; the label ids are the real 13 (other = 12)."""
    from types import SimpleNamespace

    from tiny_cats.classifier.labels import OTHER_ID

    torch.manual_seed(0)
    logits = torch.randn(6, 13)
    model = lambda pixel_values: SimpleNamespace(logits=logits)  # noqa: E731
    labels = torch.tensor([0, 3, OTHER_ID, 11, OTHER_ID, 5])
    inputs = {"pixel_values": None, "labels": labels}
    plain = train_classifier.soft_cross_entropy(model, inputs, 0.1)
    assert plain == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item())
    p_other = logits.softmax(-1)[:, OTHER_ID]
    by_hand = -torch.where(labels == OTHER_ID, p_other, 1 - p_other).log().mean()
    with_aux = train_classifier.soft_cross_entropy(model, inputs, 0.1, cat_vs_not_weight=0.5)
    assert (with_aux - plain).item() == pytest.approx(0.5 * by_hand.item(), rel=1e-5)

    soft = F.one_hot(labels, 13).float() * 0.7 + F.one_hot(labels.roll(1), 13).float() * 0.3  # a mixup of pairs
    other = soft[:, OTHER_ID]
    soft_by_hand = -(other * p_other.log() + (1 - other) * (1 - p_other).log()).mean()
    soft_inputs = {"pixel_values": None, "labels": soft}
    gap = train_classifier.soft_cross_entropy(model, soft_inputs, 0.0, 2.0) - train_classifier.soft_cross_entropy(
        model, soft_inputs, 0.0)
    assert gap.item() == pytest.approx(2 * soft_by_hand.item(), rel=1e-5)


def test_layer_decay_rates_grow_from_stem_to_head():
    model = TinyCatsForImageClassification(TinyCatsConfig(image_size=32))
    groups = parameter_groups(model, head_lr=1e-3, backbone_lr=1e-4, layer_decay=0.5)
    rates = [g["lr"] for g in groups]
    assert rates == sorted(rates) and len(groups) == 10  # stem, 7 stages, 1x1 head conv, classifier
    assert rates[0] == pytest.approx(1e-4 * 0.5 ** 8) and rates[-2] == 1e-4 and rates[-1] == 1e-3
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    stem = set(map(id, model.base_model.encoder.stem.parameters()))
    assert {id(p) for p in groups[0]["params"]} == stem
    plain = parameter_groups(model, head_lr=1e-3, backbone_lr=1e-4)
    assert [g["lr"] for g in plain] == [1e-4, 1e-3] and plain[1]["params"] == list(model.classifier.parameters())


@pytest.mark.parametrize("kind", ["basic", "advanced", "randaugment"])
def test_augmentations_keep_shape_and_range(kind):
    torch.manual_seed(0)
    images = torch.rand(4, 3, 32, 32)
    out = build_train_augmentation(kind, 32)(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="augmentation must be one of"):
        build_train_augmentation("strong", 32)


def test_preprocessing_comes_from_the_image_processor(pet_folder):
    """Test batches are the processor's output; training batches use its resampling filter."""
    from PIL import Image

    test = load_pets(str(pet_folder))["test"]
    processor = TinyCatsImageProcessor(size=24, resample=Image.NEAREST, image_mean=[0.2, 0.3, 0.4], image_std=0.25)
    batch = next(iter(make_eval_loader(test, processor, batch_size=3, num_workers=0)))
    assert torch.equal(batch["pixel_values"], processor([test[i]["image"] for i in range(3)])["pixel_values"])

    cfg = train_classifier.ClassifierTrainingConfig(train_batch_size=1, dataloader_num_workers=0)
    loader = make_train_loader(test.select([0]), cfg, 20, processor.resample)
    expected = test[0]["image"].convert("RGB").resize((20, 20), Image.NEAREST)
    assert torch.equal(next(iter(loader))["pixel_values"][0],
                       torch.tensor(list(expected.getdata()), dtype=torch.float32).T.reshape(3, 20, 20) / 255)


def test_classifier_recipe_options_validation_and_calibration(pet_folder, tmp_path):
    """Validation split from the training photos, mixup + CutMix, layer decay, RandAugment, EMA, epochs, flip:
    the report has calibration before/after on validation and test, and the saved folder reproduces it."""
    out = tmp_path / "clf"
    args = ["--data", str(pet_folder), "--output_dir", str(out), *TINY_CLASSIFIER, "--validation_fraction", "0.3",
            "--validation_every_steps", "2", "--mixup_alpha", "0.2", "--cutmix_alpha", "1.0", "--layer_decay", "0.7",
            "--augmentation", "randaugment", "--ema_decay", "0.5", "--cat_vs_not_weight", "0.5", "--num_epochs", "2", "--max_train_steps", "1000",
            "--checkpointing_steps", "1000", "--test_time_flip", "true", "--pretrained", "false"]
    train_classifier.main(parse_config(train_classifier.ClassifierTrainingConfig, args))
    results = json.loads((out / "final" / "training_results.json").read_text())

    pets = load_pets(str(pet_folder))
    num_validation = results["validation"]["flip_off"]["num_images"]
    assert num_validation == 5  # 30% of each label, at least one: Abyssinian, Bengal, Birman, 2 of 6 dogs
    assert results["num_train_images"] + num_validation == len(pets["train"])  # carved out of training photos
    assert results["test"]["flip_off"]["num_images"] == len(pets["test"])
    assert results["steps"] == 2 * (9 // 4) and results["config"]["max_train_steps"] == 4  # 2 epochs of 2 steps
    assert results["epochs"] == 2  # the last epoch counts although the loop stops on its last step
    assert results["temperature"] > 0
    for split in ("validation", "test"):
        for flip in ("flip_off", "flip_on"):
            found = results[split][flip]
            assert {"accuracy", "cat_breed_accuracy", "nll", "ece", "nll_calibrated", "ece_calibrated"} <= set(found)
            assert 0 <= found["ece"] <= 1 and 0 <= found["ece_calibrated"] <= 1
    assert results["accuracy"] == results["test"]["flip_on"]["accuracy"]  # the shipped setting, at the top

    model = TinyCatsForImageClassification.from_pretrained(out / "final").eval()
    processor = TinyCatsImageProcessor.from_pretrained(out / "final")
    assert model.config.temperature == pytest.approx(results["temperature"]) and model.config.test_time_flip
    assert processor.size == {"height": 32, "width": 32}
    with torch.no_grad():
        logits = model(**processor([row["image"] for row in pets["test"]])).logits
    labels = torch.tensor(pets["test"]["label"])
    assert (logits.argmax(-1) == labels).float().mean().item() == pytest.approx(results["accuracy"])
    assert F.cross_entropy(logits, labels).item() == pytest.approx(results["test"]["flip_on"]["nll_calibrated"],
                                                                   rel=1e-4)


def test_evaluate_test_false_skips_only_the_test_split(pet_folder, tmp_path):
    """Cross-validation runs skip the test split: the same weights, temperature and validation scores as a run
    that evaluates it, and no test numbers; without a validation split there is nothing to evaluate."""
    from safetensors.torch import load_file

    runs = {}
    for evaluate_test in ("true", "false"):
        out = tmp_path / evaluate_test
        args = ["--data", str(pet_folder), "--output_dir", str(out), *TINY_CLASSIFIER, "--validation_fraction", "0.3",
                "--max_train_steps", "2", "--pretrained", "false", "--evaluate_test", evaluate_test]
        metrics = train_classifier.main(parse_config(train_classifier.ClassifierTrainingConfig, args))
        runs[evaluate_test] = metrics, json.loads((out / "final" / "training_results.json").read_text()), \
            load_file(out / "final" / "model.safetensors")
    (with_test, full, full_weights), (without, cv, cv_weights) = runs["true"], runs["false"]
    assert "test" in full and "test" not in cv and "accuracy" not in cv  # no top-level (test) numbers either
    assert cv["validation"] == full["validation"] and cv["temperature"] == full["temperature"]
    assert without == full["validation"]["flip_off"] and with_test == full["test"]["flip_off"]
    assert full_weights.keys() == cv_weights.keys()
    assert all(torch.equal(full_weights[name], cv_weights[name]) for name in full_weights)

    no_validation = ["--data", str(pet_folder), "--output_dir", str(tmp_path / "none"), *TINY_CLASSIFIER,
                     "--max_train_steps", "2", "--evaluate_test", "false"]
    with pytest.raises(ValueError, match="evaluate_test false needs validation_fraction > 0"):
        train_classifier.main(parse_config(train_classifier.ClassifierTrainingConfig, no_validation))
    assert not (tmp_path / "none").exists()


def test_ablation_rows_say_whether_their_time_covers_the_whole_run():
    """Reports written since the checkpoints keep the clock give the whole run's time; older ones only the last process's."""
    from .test_training import load_script

    ablate = load_script("ablate_classifier")
    scores = {"accuracy": 0.9, "cat_breed_accuracy": 0.8, "ece": 0.2, "ece_calibrated": 0.02}
    results = {"validation": {"flip_off": scores, "flip_on": scores}, "test": {"flip_off": scores, "flip_on": scores},
               "config": {"num_epochs": 5}, "epochs": 4, "steps": 340, "temperature": 0.48,
               "train_seconds_this_run": 120.0}
    old = ablate.row("H_224_256", results)
    assert (old["train_seconds"], old["train_seconds_cover"]) == (120.0, "its last process only")
    new = ablate.row("bundled_recipe", {**results, "train_seconds": 900.0})
    assert (new["train_seconds"], new["train_seconds_cover"]) == (900.0, "whole run")
    assert new["overrides"] == {"config": "training/configs/classifier_cpu.yaml"} and new["epochs"] == 5



def test_ablation_report_keeps_the_committed_rows_of_runs_this_machine_does_not_have(tmp_path, monkeypatch):
    """A fresh machine has no outputs/: its report updates the rows it has runs for and keeps the others."""
    from .test_training import load_script

    ablate = load_script("ablate_classifier")
    scores = {"accuracy": 0.9, "cat_breed_accuracy": 0.8, "ece": 0.2, "ece_calibrated": 0.02}
    results = {"validation": {"flip_off": scores, "flip_on": scores}, "test": {"flip_off": scores, "flip_on": scores},
               "config": {"num_epochs": 5}, "epochs": 5, "steps": 340, "temperature": 0.48, "train_seconds": 60.0,
               "train_seconds_this_run": 60.0}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"output_dir: {tmp_path / 'bundled'}\n")
    report = tmp_path / "benchmarks" / "classifier_ablation.json"
    monkeypatch.setattr(ablate, "OUT", tmp_path / "runs")
    monkeypatch.setattr(ablate, "REPORT", report)
    monkeypatch.setattr(ablate, "RECIPE", recipe)
    monkeypatch.setattr(ablate, "ROOT", tmp_path)
    monkeypatch.setattr(ablate, "BASE_CONFIG", tmp_path / "base.yaml")
    committed = [{**ablate.row(name, {**results, "train_seconds": 1.0}), "variant": name}
                 for name in ("bundled_recipe", "B_no_smoothing", "A_base", "retired_row")]
    report.parent.mkdir()
    report.write_text(json.dumps({"runs": committed}))
    run = tmp_path / "runs" / "A_base" / "final"
    run.mkdir(parents=True)
    (run / "training_results.json").write_text(json.dumps(results))

    ablate.cmd_report(None)
    rows = json.loads(report.read_text())["runs"]
    assert [r["variant"] for r in rows] == ["A_base", "B_no_smoothing", "bundled_recipe", "retired_row"]
    assert [r["train_seconds"] for r in rows] == [60.0, 1.0, 1.0, 1.0]  # only A_base's run is on this machine




def test_ablation_force_trains_a_finished_variant_again_from_scratch(tmp_path, monkeypatch):
    """--force must not resume the finished run's last checkpoint (that would end at once on the old weights)."""
    from .test_training import load_script

    ablate = load_script("ablate_classifier")
    monkeypatch.setattr(ablate, "ROOT", tmp_path)
    monkeypatch.setattr(ablate, "OUT", tmp_path / "runs")
    calls = []
    monkeypatch.setattr(ablate.subprocess, "run", lambda cmd, **kwargs: calls.append(cmd))
    run = tmp_path / "runs" / "A_base"
    (run / "checkpoint-340").mkdir(parents=True)
    (run / "final").mkdir()
    (run / "final" / "training_results.json").write_text("{}")

    ablate.cmd_run(argparse.Namespace(variants=["A_base"], threads=2, force=False))
    assert calls == []
    ablate.cmd_run(argparse.Namespace(variants=["A_base"], threads=2, force=True))
    assert len(calls) == 1 and "--resume_from_checkpoint" not in calls[0]
    assert (tmp_path / "runs" / "A_base.before-force" / "checkpoint-340").is_dir() and not (run / "final").exists()


def test_generator_ablation_report_keeps_the_committed_rows_of_runs_this_machine_does_not_have(pet_folder, tmp_path,
                                                                                              monkeypatch):
    """The generator's ablation report likewise: a run here replaces its row, the rest (and the throughput) stay."""
    import numpy as np

    import tiny_cats.evaluation.generative_metrics as generative_metrics

    from .test_training import load_script

    ablate = load_script("ablate_generator")
    monkeypatch.setattr(ablate, "ROOT", tmp_path)
    monkeypatch.setattr(ablate, "OUT", tmp_path / "outputs")
    monkeypatch.setattr(ablate, "real_features", lambda images: (np.zeros((4, 8)), np.ones((4, 8))))
    monkeypatch.setattr(generative_metrics, "compute_fid_kid", lambda a, b, compute_kid: {"fid": 12.345})
    first, second = list(ablate.VARIANTS)[:2]
    scores = {"ema": {"fid": 300.0, "kid": 0.3, "judged_asked_breed": 0.1, "judged_a_cat": 0.2}}
    run = {"steps": 10, "scores": scores}
    path = tmp_path / "benchmarks" / "generator_ablation.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"throughput": {"img_per_s": {first: 5.0, second: 6.0}},
                                "runs": [{**run, "variant": second}, {**run, "variant": first}]}))
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / f"{first}.json").write_text(json.dumps({**run, "variant": first, "steps": 99,
                                                                     "budget_minutes": 3.0}))
    args, images = argparse.Namespace(budget_minutes=12.0, variants=[first]), torch.zeros(3, 3, 32, 32)
    with pytest.raises(SystemExit, match=f"no img/s of {first} in .*throughput.json: run `measure` first"):
        ablate.cmd_run(args, images, torch.zeros(3))

    ablate.cmd_report(args, images, torch.zeros(3))
    doc = json.loads(path.read_text())
    assert [(r["variant"], r["steps"]) for r in doc["runs"]] == [(first, 99), (second, 10)]
    assert doc["throughput"]["img_per_s"] == {first: 5.0, second: 6.0} and doc["real_vs_real_floor_fid"] == 12.35
    # each run's own budget, not the report command's --budget-minutes (12); an older row's from steps x 64 / img/s
    assert doc["budget_minutes_per_variant"] == {first: 3.0, second: 1.8}
    # a measurement of one variant here replaces that variant's rate only
    (tmp_path / "outputs" / "throughput.json").write_text(json.dumps({"img_per_s": {first: 7.0}, "params": {first: 1}}))
    ablate.cmd_report(args, images, torch.zeros(3))
    assert json.loads(path.read_text())["throughput"]["img_per_s"] == {first: 7.0, second: 6.0}
    (tmp_path / "outputs" / f"{second}.json").write_text(json.dumps({**run, "variant": second, "budget_minutes": 3.0}))
    ablate.cmd_report(args, images, torch.zeros(3))
    assert json.loads(path.read_text())["budget_minutes_per_variant"] == 3.0  # one budget for all: one number

    images, labels = ablate.load_data(str(pet_folder))  # the cats at 32 px, packed once into outputs/
    assert images.shape[1:] == (3, 32, 32) and images.dtype == torch.uint8 and len(labels) == len(images) > 0
    assert [p.name for p in (tmp_path / "outputs").glob("*.npz")] == ["cats_train+test_32px.npz"]
    monkeypatch.setattr(ablate, "OUT", tmp_path / "elsewhere")
    with pytest.raises(SystemExit, match="no such folder"):
        ablate.load_data(str(tmp_path / "absent"))


def test_compare_classifiers_pairs_the_validation_photos_and_refuses_another_split(pet_folder, classifier_dir, tmp_path):
    """Each model's scores are its own calibrated validation metrics; a model compared with itself ties;
    a model that held out other photos is refused in one line."""
    import shutil

    from tiny_cats.classifier.labels import OTHER_ID
    from tiny_cats.data import stratified_split

    from .conftest import tiny_classifier
    from .test_training import load_script

    compare = load_script("compare_classifiers")
    other = tmp_path / "other"
    torch.manual_seed(1)
    model = TinyCatsForImageClassification(TinyCatsConfig(image_size=32)).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)  # a second, different model
    model.save_pretrained(other)
    TinyCatsImageProcessor(size=32).save_pretrained(other)

    args = [str(other), str(classifier_dir), "--data", str(pet_folder), "--validation_fraction", "0.3", "--flip", "on",
            "--resamples", "200", "--output", str(tmp_path / "cmp.json")]
    result = compare.main(args)
    assert json.loads((tmp_path / "cmp.json").read_text()) == result

    train = load_pets(str(pet_folder))["train"]
    held = train.select(stratified_split(train["label"], 0.3, 0)[1])
    assert result["validation_photos"] == len(held) == 5
    labels = torch.tensor(held["label"])
    processor = TinyCatsImageProcessor(size=32)
    for name, reference in (("candidate", model), ("baseline", tiny_classifier())):
        reference.config.test_time_flip = True
        with torch.no_grad():
            logits = reference(**processor([row["image"] for row in held])).logits
        assert result[name]["accuracy"] == pytest.approx((logits.argmax(-1) == labels).float().mean().item(), abs=1e-4)
        temperature = result[name]["temperature"]
        assert result[name]["nll_calibrated"] == pytest.approx(F.cross_entropy(logits / temperature, labels).item(),
                                                               abs=2e-3)
    assert result["nll"]["candidate_minus_baseline"] == pytest.approx(
        result["candidate"]["nll_calibrated"] - result["baseline"]["nll_calibrated"], abs=2e-4)
    assert result["nll"]["interval_95"][0] <= result["nll"]["candidate_minus_baseline"] <= result["nll"]["interval_95"][1]
    other = (logits / temperature).softmax(-1)[:, OTHER_ID]  # the baseline's, from the loop's last pass
    cat_vs_not = -torch.where(labels == OTHER_ID, other, 1 - other).log().mean().item()
    assert result["baseline"]["cat_vs_not_nll_calibrated"] == pytest.approx(cat_vs_not, abs=2e-3)
    assert result["cat_vs_not_nll"]["candidate_minus_baseline"] == pytest.approx(
        result["candidate"]["cat_vs_not_nll_calibrated"] - result["baseline"]["cat_vs_not_nll_calibrated"], abs=2e-4)

    itself = compare.main([str(classifier_dir), str(classifier_dir), "--data", str(pet_folder),
                           "--validation_fraction", "0.3", "--resamples", "50"])
    assert itself["nll"]["candidate_minus_baseline"] == 0 and itself["nll"]["p_candidate_better"] == 0
    assert itself["accuracy"]["only_candidate_right"] == itself["accuracy"]["only_baseline_right"] == 0

    shutil.copytree(classifier_dir, tmp_path / "seed1")
    (tmp_path / "seed1" / "training_results.json").write_text(json.dumps({"config": {"validation_fraction": 0.3,
                                                                                     "seed": 1}}))
    with pytest.raises(SystemExit, match="trained on some of these validation photos"):
        compare.main([str(tmp_path / "seed1"), str(classifier_dir), "--data", str(pet_folder),
                      "--validation_fraction", "0.3"])
    (tmp_path / "seed1" / "training_results.json").write_text(json.dumps({"config": {"validation_fraction": 0.5,
                                                                                     "validation_seed": 0}}))
    with pytest.raises(SystemExit, match=r"0.5 with validation seed 0 \(fold 0\), not 0.5 with 0 \(fold 1\)"):
        compare.main([str(tmp_path / "seed1"), str(classifier_dir), "--data", str(pet_folder),
                      "--validation_fraction", "0.5", "--validation_fold", "1"])  # a run of fold 0 trained on fold 1
    with pytest.raises(SystemExit, match="is not a saved classifier folder"):  # a typo, before the data is read
        compare.main([str(tmp_path / "sede1"), str(classifier_dir), "--data", str(tmp_path / "none")])


def test_soup_averages_the_weights_and_refits_the_temperature_on_the_shared_validation_photos(pet_folder, tmp_path):
    """Every float tensor (BatchNorm statistics too) is the ingredients' mean; the temperature is fitted on the
    validation photos with the shipped flip; training time adds up; other held-out photos are refused."""
    from tiny_cats.data import split_validation

    from .test_training import load_script

    soup = load_script("soup_classifiers")
    dirs = []
    for seed, trained in ((0, {"seed": 0}), (1, {"seed": 1, "validation_seed": 0}), (2, {"seed": 0, "validation_seed": 1})):
        torch.manual_seed(seed)
        model = TinyCatsForImageClassification(TinyCatsConfig(image_size=32, test_time_flip=True)).eval()
        with torch.no_grad():
            for tensor in model.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(tensor + 0.1 * torch.randn_like(tensor).abs())  # running_var stays positive
        dirs.append(tmp_path / f"run{seed}")
        model.save_pretrained(dirs[-1])
        TinyCatsImageProcessor(size=32).save_pretrained(dirs[-1])
        (dirs[-1] / "training_results.json").write_text(json.dumps({
            "steps": 10, "train_seconds": 60.0 * (seed + 1), "num_train_images": 12,
            "config": {"validation_fraction": 0.3, **trained}}))

    out = tmp_path / "soups" / "s01"
    report = soup.main([str(dirs[0]), str(dirs[1]), "--output", str(out), "--data", str(pet_folder)])
    assert json.loads((out / "training_results.json").read_text()) == json.loads(json.dumps(report))
    assert report["train_seconds"] == 180.0 and report["steps"] == 20
    assert [item["model"] for item in report["soup_of"]] == [str(dirs[0]), str(dirs[1])]
    assert [item["config_differences"] for item in report["soup_of"]] == [{}, {"seed": 1, "validation_seed": 0}]

    souped = TinyCatsForImageClassification.from_pretrained(out).eval()
    a, b = (TinyCatsForImageClassification.from_pretrained(d).state_dict() for d in dirs[:2])
    for name, tensor in souped.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, (a[name] + b[name]) / 2)
        else:
            assert torch.equal(tensor, a[name])
    assert any("running_var" in name for name in a)

    _, held = split_validation(load_pets(str(pet_folder))["train"], 0.3, 0)
    souped.config.temperature = 1.0
    with torch.no_grad():
        logits = souped(**TinyCatsImageProcessor(size=32)([row["image"] for row in held])).logits  # flip on
    labels = torch.tensor(held["label"])
    assert report["temperature"] == pytest.approx(fit_temperature(logits, labels), rel=1e-4)
    assert TinyCatsForImageClassification.from_pretrained(out).config.temperature == pytest.approx(report["temperature"])
    assert report["validation"]["flip_on"]["accuracy"] == pytest.approx((logits.argmax(-1) == labels).float().mean().item())

    with pytest.raises(SystemExit, match="held out different validation photos"):
        soup.main([str(dirs[0]), str(dirs[2]), "--output", str(tmp_path / "soups" / "s02"), "--data", str(pet_folder)])
    with pytest.raises(SystemExit, match="exists already"):
        soup.main([str(dirs[0]), str(dirs[1]), "--output", str(out), "--data", str(pet_folder)])
    for changed, error in (({"config": {"validation_fraction": 0.0}}, "held out no validation photos"),
                           ({"train_seconds": None}, "no whole-run train_seconds")):
        pair = [shutil.copytree(d, tmp_path / "changed" / d.name, dirs_exist_ok=True) for d in dirs[:2]]
        for d in pair:
            results = {**json.loads((d / "training_results.json").read_text()), **changed}
            (d / "training_results.json").write_text(json.dumps({k: v for k, v in results.items() if v is not None}))
        with pytest.raises(SystemExit, match=error):  # before any model or photo is loaded
            soup.main([*map(str, pair), "--output", str(tmp_path / "soups" / "s03"), "--data", str(tmp_path / "none")])
    assert sorted(p.name for p in (tmp_path / "soups").iterdir()) == ["s01"]  # nothing half-written


def test_crossval_scores_each_fold_and_pools_the_folds_two_recipes_share(pet_folder, tmp_path):
    """score writes a fold's flip-on, temperature-1 logits of exactly its held-out photos; report pools the folds
    both recipes have (two folds of 1/2 = every training photo once) and pairs the photos; mismatches are refused."""
    from tiny_cats.classifier.labels import OTHER_ID
    from tiny_cats.data import split_validation

    from .test_training import load_script

    crossval = load_script("crossval_classifier")
    train = load_pets(str(pet_folder))["train"]
    scored = tmp_path / "crossval"
    for recipe, seed in (("a", 0), ("b", 1)):
        for fold in (0, 1):
            torch.manual_seed(10 * seed + fold)
            model = TinyCatsForImageClassification(TinyCatsConfig(image_size=32)).eval()
            run = tmp_path / f"{recipe}{fold}"
            model.save_pretrained(run)
            TinyCatsImageProcessor(size=32).save_pretrained(run)
            (run / "training_results.json").write_text(json.dumps({"train_seconds": 60.0 + fold, "config": {
                "validation_fraction": 0.5, "validation_seed": 0, "validation_fold": fold}}))
            written = crossval.main(["score", str(run), "--recipe", recipe, "--data", str(pet_folder),
                                     "--output", str(scored)])
            doc = json.loads(written.read_text())
            _, held = split_validation(train, 0.5, 0, fold)
            assert written.name == f"fold_{fold}.json" and doc["files"] == list(held["file"])
            model.config.test_time_flip = True
            with torch.no_grad():
                expected = model(**TinyCatsImageProcessor(size=32)([row["image"] for row in held])).logits
            torch.testing.assert_close(torch.tensor(doc["logits"]), expected, atol=1e-4, rtol=0)

    report = crossval.main(["report", "a", "b", "--output", str(scored), "--resamples", "50"])
    assert report["folds"] == [0, 1] and report["photos"] == len(train)  # every training photo once
    pooled = crossval.pooled(scored / "a", [0, 1])
    errors = int(((pooled["logits"].argmax(-1) == OTHER_ID) != (pooled["labels"] == OTHER_ID)).sum())
    assert report["cat_vs_not_errors"]["candidate"] == errors
    assert len(report["cat_vs_not_errors"]["candidate_files"]) == errors
    assert report["candidate"]["accuracy"] == pytest.approx(
        (pooled["logits"].argmax(-1) == pooled["labels"]).float().mean().item(), abs=1e-4)
    assert report["candidate"]["train_seconds_per_fold"] == [60.0, 61.0]
    itself = crossval.main(["report", "a", "a", "--output", str(scored), "--resamples", "50"])
    assert itself["cat_vs_not_errors"]["candidate_minus_baseline"] == 0 == itself["nll"]["candidate_minus_baseline"]

    only = crossval.main(["report", "a", "b", "--output", str(scored), "--resamples", "50", "--folds", "1"])
    assert only["folds"] == [1] and only["photos"] == len(split_validation(train, 0.5, 0, 1)[1])
    assert only["candidate"]["train_seconds_per_fold"] == [61.0]

    (scored / "b" / "fold_1.json").unlink()
    with pytest.raises(SystemExit, match=r"fold\(s\) 1 not scored for both a and b"):
        crossval.main(["report", "a", "b", "--output", str(scored), "--folds", "0", "1"])
    assert crossval.main(["report", "a", "b", "--output", str(scored), "--resamples", "50"])["folds"] == [0]
    with pytest.raises(SystemExit, match="no fold scored for both"):
        crossval.main(["report", "a", "c", "--output", str(scored)])
    first = json.loads((scored / "a" / "fold_0.json").read_text())
    (scored / "a" / "fold_1.json").write_text(json.dumps({**first, "fold": 1}))  # fold 0's photos again
    (scored / "b" / "fold_1.json").write_text(json.dumps({**first, "fold": 1}))
    with pytest.raises(SystemExit, match="a photo is held out by two of the folds"):
        crossval.main(["report", "a", "b", "--output", str(scored)])
    (scored / "a" / "fold_1.json").write_text(json.dumps(first))
    with pytest.raises(SystemExit, match="fold_1.json holds fold 0, not 1"):
        crossval.main(["report", "a", "b", "--output", str(scored)])
    (scored / "b" / "fold_1.json").unlink()
    other = json.loads((scored / "b" / "fold_0.json").read_text())
    (scored / "b" / "fold_0.json").write_text(json.dumps({**other, "files": other["files"][::-1]}))
    with pytest.raises(SystemExit, match="held out different photos"):
        crossval.main(["report", "a", "b", "--output", str(scored)])
    with pytest.raises(SystemExit, match="held out no validation photos"):
        (tmp_path / "a0" / "training_results.json").write_text(json.dumps({"config": {}}))
        crossval.main(["score", str(tmp_path / "a0"), "--recipe", "a", "--data", str(pet_folder), "--output", str(scored)])
