"""Which settings make BBB on the 8x8 digits tell unfamiliar images from digits better than a
standard network, and stay calibrated? A grid of candidate settings, each trained on several
seeds next to the standard network on the same data, scored by ECE and by the OOD AUROC of the
predictive entropy on every OOD set the images page shows.

    python scripts/digits_defaults.py [--seeds 0 1 2] [--json out.json]

Prints one row per candidate: mean accuracy, mean ECE (BBB and standard), and on how many of the
OOD sets BBB's mean AUROC beats the standard network's, with the per-set means.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

from bbb_core.config import default_config
from bbb_core.image_analysis import analyse
from bbb_core.process import configure_threads
from bbb_core.rng import derive_seed
from bbb_core.train import Trainer

# name -> changes to default_config("digits"): prior width, KL weight, rho0, epochs, estimator
CANDIDATES = {
    "default": {},
    "kl 0.1": {"kl_weight": 0.1},
    "kl 0.3": {"kl_weight": 0.3},
    "kl 0.1, rho0 -6": {"kl_weight": 0.1, "rho0": -6.0},
    "kl 0.3, sigma 0.5": {"kl_weight": 0.3, "sigma": 0.5},
    "kl 0.1, 100 epochs": {"kl_weight": 0.1, "epochs": 100},
    "kl 0.3, flipout": {"kl_weight": 0.3, "estimator": "flipout"},
    "mixture, kl 0.3": {"kl_weight": 0.3, "family": "mixture"},
    "kl 0.1, rho0 -7": {"kl_weight": 0.1, "rho0": -7.0},
    "kl 0.05, rho0 -6": {"kl_weight": 0.05, "rho0": -6.0},
    "kl 0.1, rho0 -6, 100 epochs": {"kl_weight": 0.1, "rho0": -6.0, "epochs": 100},
    "kl 0.3, rho0 -6": {"kl_weight": 0.3, "rho0": -6.0},
    # the CNN (16, 32 channels) with the chosen KL weight and rho0: its convolutions by flipout
    # (what "local" gives a CNN) or by weight samples (reparam)
    "cnn, flipout convolutions": {"kl_weight": 0.1, "rho0": -7.0, "arch": "cnn"},
    "cnn, reparam": {"kl_weight": 0.1, "rho0": -7.0, "arch": "cnn", "estimator": "reparam"},
}


def config(seed: int, changes: dict):
    cfg = default_config("digits", seed=seed, device="cpu")
    train = replace(
        cfg.train,
        kl_weight=changes.get("kl_weight", cfg.train.kl_weight),
        epochs=changes.get("epochs", cfg.train.epochs),
    )
    model = replace(
        cfg.model,
        rho0=changes.get("rho0", cfg.model.rho0),
        estimator=changes.get("estimator", cfg.model.estimator),
        arch=changes.get("arch", cfg.model.arch),
        hidden=(16, 32) if changes.get("arch") == "cnn" else cfg.model.hidden,
    )
    prior = replace(
        cfg.prior,
        family=changes.get("family", cfg.prior.family),
        sigma=changes.get("sigma", cfg.prior.sigma),
    )
    return replace(cfg, train=train, model=model, prior=prior)


def run(seed: int, changes: dict) -> dict:
    cfg = config(seed, changes)
    bbb = Trainer(cfg)
    models = {"bbb": bbb.run().model}
    standard = replace(cfg, model=replace(cfg.model, kind="standard"))
    standard_trainer = Trainer(standard, dataset=bbb.dataset)
    models["standard"] = standard_trainer.run().model
    analysis = analyse(models, bbb.dataset, cfg.train.pred_samples, rng=derive_seed(seed, 9))
    out = {"seconds": {"bbb": bbb.seconds, "standard": standard_trainer.seconds}}
    for name in models:
        out[name] = {
            "accuracy": analysis.metrics[name]["accuracy"],
            "ece": analysis.metrics[name]["ece"],
            "auroc": dict(analysis.ood[name].auroc_entropy),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=list(CANDIDATES))
    parser.add_argument("--json")
    args = parser.parse_args()
    configure_threads(1)
    results = {}
    for name in args.only or CANDIDATES:
        t0 = time.perf_counter()
        runs = [run(seed, CANDIDATES[name]) for seed in args.seeds]
        results[name] = runs
        mean = {
            m: {
                "accuracy": statistics.mean(r[m]["accuracy"] for r in runs),
                "ece": statistics.mean(r[m]["ece"] for r in runs),
                "auroc": {
                    k: statistics.mean(r[m]["auroc"][k] for r in runs) for k in runs[0][m]["auroc"]
                },
            }
            for m in ("bbb", "standard")
        }
        seconds = statistics.mean(r["seconds"]["bbb"] for r in runs)
        wins = sum(
            mean["bbb"]["auroc"][k] > mean["standard"]["auroc"][k] for k in mean["bbb"]["auroc"]
        )
        sets = ", ".join(
            f"{k} {mean['bbb']['auroc'][k]:.2f}/{mean['standard']['auroc'][k]:.2f}"
            for k in mean["bbb"]["auroc"]
        )
        print(
            f"{name:<22} acc {mean['bbb']['accuracy']:.3f}/{mean['standard']['accuracy']:.3f} "
            f"ECE {mean['bbb']['ece']:.3f}/{mean['standard']['ece']:.3f} wins {wins}/"
            f"{len(mean['bbb']['auroc'])} (BBB trains in {seconds:.1f} s; "
            f"{time.perf_counter() - t0:.0f} s in all): {sets}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
