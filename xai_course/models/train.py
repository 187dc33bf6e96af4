"""Training code for the course models: it made the shipped weights and reproduces them.

    python -m xai_course.models.train shapes_cnn            # train, evaluate, write weights + card
    python -m xai_course.models.train all --out /tmp/models  # every model, somewhere else
    python -m xai_course.models.train digits_vae            # chapter 10's generator (models/generators.py)

Shapes models see fresh images every epoch (seed ``TRAIN_SEED + epoch``) and are evaluated on images
drawn with ``TEST_SEED``, a seed no training or validation step ever uses. Digits models train on the
fixed training split of :func:`xai_course.data.digits` and are evaluated on its held-out test split.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import digits, shapes
from .zoo import CHECKSUMS, GENERATORS, MODELS, WEIGHTS_DIR, sha256, spec

TRAIN_SEED = 1_000  # epoch e of a shapes model draws its images with seed TRAIN_SEED + e
TEST_SEED = 999_999  # the shapes test set: never used in training
SHAPES_PER_EPOCH = 6_000
TEST_SIZE = 2_000
RANDOM_LABELS_SEED = 7  # the one permutation of the labels of a ``random_labels`` model


def test_set(name: str):
    """The held-out test set of a course model: ``(images, labels)`` it never saw in training."""
    s = spec(name)
    data = shapes(TEST_SIZE, seed=TEST_SEED, spurious=s.spurious) if s.data == "shapes" else digits("test")
    return data.images, data.labels


def train_set(name: str):
    """The fixed training set ``(images, labels)`` of a model with ``train_size`` (labels as trained on:
    permuted once with ``RANDOM_LABELS_SEED`` for a ``random_labels`` model)."""
    s = spec(name)
    if s.train_size is None:
        raise ValueError(f"{name} sees fresh images every epoch: it has no fixed training set")
    d = shapes(s.train_size, seed=TRAIN_SEED, spurious=s.spurious)
    labels = d.labels
    if s.random_labels:
        labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(RANDOM_LABELS_SEED))]
    return d.images, labels


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Accuracy of ``model`` (put in eval mode) on ``images``, batched."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(labels), batch_size):
        logits = model(images[i:i + batch_size].to(device))
        correct += (logits.argmax(1).cpu() == labels[i:i + batch_size]).sum().item()
    return correct / len(labels)


def _epoch_data(s, epoch: int, gen: torch.Generator):
    if s.data == "shapes" and s.train_size is not None:
        return train_set(s.name)
    if s.data == "shapes":
        d = shapes(SHAPES_PER_EPOCH, seed=TRAIN_SEED + epoch, spurious=s.spurious)
        return d.images, d.labels
    d = digits("train")
    # augmentation: shift each digit by up to one pixel
    shift = torch.randint(-1, 2, (2,), generator=gen).tolist()
    return torch.roll(d.images, shifts=shift, dims=(2, 3)), d.labels


def _train_epoch(model, images, labels, optimiser, schedule, gen, batch_size, device) -> float:
    """One pass over ``(images, labels)`` in a seeded random order; returns the mean loss."""
    model.train()
    order = torch.randperm(len(labels), generator=gen)
    total = 0.0
    for i in range(0, len(labels), batch_size):
        idx = order[i:i + batch_size]
        loss = F.cross_entropy(model(images[idx].to(device)), labels[idx].to(device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if schedule is not None:
            schedule.step()
        total += loss.item() * len(idx)
    return total / len(labels)


def train_model(name: str, epochs: int | None = None, seed: int = 0, batch_size: int = 64,
                device: str = "cpu", verbose: bool = True) -> tuple[torch.nn.Module, dict]:
    """Train the course model ``name`` from scratch; returns ``(model in eval mode, report)``.

    The report holds the test accuracy (on data never seen in training), the seeds and the time taken.
    A model with a ``train_accuracy_target`` (the random-label model of lab 16, which must memorise its
    training set) trains on after the one-cycle ``epochs``, at a constant lr / 10, until its accuracy
    on its training set reaches the target or it has trained ``max_epochs`` in all: whether it
    memorises within the one-cycle epochs varied between retrains (99.4% and 94.6% training accuracy
    after 60 epochs; the floating-point order differs between machines and thread counts), so a fixed
    epoch count alone does not reproduce a model that memorised. Deterministic algorithms are used where torch has
    them (warn only where it has none); the global setting is restored afterwards.
    """
    s = spec(name)
    epochs = s.epochs if epochs is None else epochs
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _train_model(s, name, epochs, seed, batch_size, device, verbose)
    finally:
        torch.use_deterministic_algorithms(deterministic)


def _train_model(s, name, epochs, seed, batch_size, device, verbose):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = s.build().to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=s.lr, total_steps=epochs * -(-_epoch_data(s, 0, gen)[1].numel() // batch_size))
    start = time.time()
    for epoch in range(epochs):
        loss = _train_epoch(model, *_epoch_data(s, epoch, gen), optimiser, schedule, gen, batch_size, device)
        if verbose:
            print(f"{name} epoch {epoch + 1}/{epochs}: loss {loss:.4f} "
                  f"({time.time() - start:.0f} s)", flush=True)
    trained = epochs
    if s.train_accuracy_target is not None:  # train on until the training set is memorised
        cap = max(epochs, s.max_epochs or epochs)
        for group in optimiser.param_groups:
            group["lr"] = s.lr / 10
        while evaluate(model, *train_set(name)) < s.train_accuracy_target and trained < cap:
            loss = _train_epoch(model, *_epoch_data(s, trained, gen), optimiser, None, gen, batch_size, device)
            trained += 1
            if verbose:
                print(f"{name} epoch {trained} (to the target {s.train_accuracy_target}, at most {cap}): "
                      f"loss {loss:.4f} ({time.time() - start:.0f} s)", flush=True)
    model.eval()
    accuracy = evaluate(model, *test_set(name))
    report = {
        "model": name, "test_accuracy": round(accuracy, 4), "epochs": trained, "seed": seed,
        **({"train_accuracy": round(evaluate(model, *train_set(name)), 4)} if s.train_size else {}),
        "batch_size": batch_size, "train_seconds": round(time.time() - start, 1),
        "torch": torch.__version__, "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
    }
    if s.spurious is not None:  # lab 17: the same images with the mark aligned, flipped, absent
        from ..evaluation import bias_lab

        acc = bias_lab.accuracies(model, bias_lab.test_sets(TEST_SIZE))
        report["mark_accuracy"] = {c: round(a["all"], 4) for c, a in acc.items()}
        report["mark_test_seed"] = bias_lab.TEST_SEED
    if verbose:
        print(f"{name}: test accuracy {accuracy:.4f}", flush=True)
    return model.cpu(), report


def _card(s, report: dict, n_params: int) -> str:
    cue = "" if s.spurious is None else f", spurious={s.spurious}"
    if s.data == "shapes" and s.train_size is not None:
        data = (f"`xai_course.data.shapes({s.train_size}, seed={TRAIN_SEED}{cue})`, the same images every "
                f"epoch" + (f", labels permuted once (seed {RANDOM_LABELS_SEED}): the model can only "
                            f"memorise them" if s.random_labels else "") + "; 64x64 RGB in [0, 1].")
        test = f"{TEST_SIZE} images of `shapes(seed={TEST_SEED}{cue})`, a seed never used in training"
    elif s.data == "shapes":
        data = (f"`xai_course.data.shapes{'(spurious=' + str(s.spurious) + ')' if cue else ''}`: "
                f"{SHAPES_PER_EPOCH} fresh images per epoch, drawn with seed "
                f"{TRAIN_SEED} + epoch; 64x64 RGB in [0, 1], classes {', '.join(s.classes)}.")
        test = f"{TEST_SIZE} images of `shapes(seed={TEST_SEED}{cue})`, a seed never used in training"
    else:
        data = ("`xai_course.data.digits('train')`: scikit-learn's handwritten digits (two thirds), "
                "resampled to 16x16 in [0, 1], shifted by up to one pixel each epoch.")
        test = "`xai_course.data.digits('test')`, the held-out third, never used in training"
    train_line = ("" if "train_accuracy" not in report else
                  f"\n- **Training accuracy**: {100 * report['train_accuracy']:.2f}% on its own training set.")
    if s.train_accuracy_target is not None:
        train_line += (f"\n- **Recipe**: {s.epochs} epochs of the one-cycle schedule, then epochs at a constant "
                       f"lr {s.lr / 10:g} until the accuracy on the training set reaches "
                       f"{100 * s.train_accuracy_target:.0f}% (at most {s.max_epochs} epochs in all; the "
                       f"epoch count above is the total).")
    if "mark_accuracy" in report:
        m = report["mark_accuracy"]
        train_line += (f"\n- **Accuracy with the mark aligned / flipped / absent** (the same {TEST_SIZE} images "
                       f"of `xai_course.evaluation.bias_lab.test_sets`, seed {report['mark_test_seed']}; "
                       f"`bias_lab.accuracies`): "
                       f"{100 * m['aligned']:.2f}% / {100 * m['flipped']:.2f}% / {100 * m['absent']:.2f}%; "
                       f"fairness gap {m['aligned'] - m['flipped']:.4f}.")
        if s.spurious > 0.5:
            train_line += ("\n- **Deliberately biased**: trained so that it learns the mark as a shortcut, "
                           "for lab 17 (bias detection); its test accuracy above, on data drawn like the "
                           "training data, hides the bias.")
    return f"""# Model card: `{s.name}`

- **Architecture**: {s.description} ({n_params:,} parameters).
- **Input**: a batch `(N, {', '.join(map(str, s.input_shape))})` of images in [0, 1], no normalisation.
- **Output**: logits `(N, {len(s.classes)})` for the classes {', '.join(s.classes)}.
- **Training data**: {data}
- **Training**: AdamW (max lr {s.lr}, weight decay 1e-4, one-cycle schedule), batch {report['batch_size']},
  {report['epochs']} epochs, seed {report['seed']}; {report['train_seconds']} s on {report['machine']}
  with torch {report['torch']}.
- **Test accuracy**: {100 * report['test_accuracy']:.2f}% on {test}.{train_line}
- **Reproduce**: `python -m xai_course.models.train {s.name}`.
- **Intended use**: teaching attribution methods; the shapes come with ground-truth object masks, so
  an explanation can be checked against where the object really is. Not for any real-world decision.
"""


def save(name: str, model: torch.nn.Module, report: dict, out: Path = WEIGHTS_DIR) -> Path:
    """Write ``NAME.pt``, ``NAME.md`` (the model card) and the checksum into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.pt"
    torch.save(model.state_dict(), path)
    n_params = sum(p.numel() for p in model.parameters())
    if name in GENERATORS:
        from .generators import vae_card

        (out / f"{name}.md").write_text(vae_card(report, n_params))
    else:
        (out / f"{name}.md").write_text(_card(spec(name), report, n_params))
    checksums_file = out / CHECKSUMS.name
    checksums = json.loads(checksums_file.read_text()) if checksums_file.exists() else {}
    checksums[name] = sha256(path)
    checksums_file.write_text(json.dumps(dict(sorted(checksums.items())), indent=2) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train the course models and write their weights and model cards.")
    parser.add_argument("name", choices=sorted(MODELS) + sorted(GENERATORS) + ["all"])
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's own")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where to write (default: the package)")
    args = parser.parse_args(argv)
    for name in sorted(MODELS) + sorted(GENERATORS) if args.name == "all" else [args.name]:
        if name in GENERATORS:         # chapter 10's VAE: its own loss and card (see generators.py)
            from .generators import train_vae

            model, report = train_vae(**({} if args.epochs is None else {"epochs": args.epochs}), seed=args.seed)
            print(f"wrote {save(name, model, report, args.out)}")
            continue
        model, report = train_model(name, epochs=args.epochs, seed=args.seed, device=args.device)
        print(f"wrote {save(name, model, report, args.out)}")


if __name__ == "__main__":
    main()
