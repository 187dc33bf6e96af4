"""Models of the digits themselves (chapter 10): a small VAE (its decoder is a generator z ↦ x) and a
Gaussian density x ↦ log p(x), for activation maximisation "with an expert" and "in code space".

- :class:`DigitsVAE` (``models.load("digits_vae")``): a variational autoencoder (Kingma & Welling 2014)
  with an 8-dimensional code, trained on ``data.digits("train")`` by :func:`train_vae`
  (``python -m xai_course.models.train digits_vae``); weights shipped with checksum and model card.
- :class:`GaussianPrior` and :func:`digits_prior`: N(μ, Σ) fitted on the training digits when called
  (a second), Σ shrunk towards a multiple of the identity so that it is well conditioned.
"""
from __future__ import annotations

import math
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn

LATENT = 8


class DigitsVAE(nn.Module):
    """Encoder 256 → 256 → (μ, log σ²) ∈ R^8 × R^8, decoder 8 → 256 → 256 → sigmoid, images (1, 16, 16)."""

    def __init__(self, latent: int = LATENT, hidden: int = 256):
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(256, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 256), nn.Sigmoid(),
                                     nn.Unflatten(1, (1, 16, 16)))

    def encode(self, x: torch.Tensor):
        """(μ, log σ²) of q(z | x), each (N, latent)."""
        return self.encoder(x).chunk(2, dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The generator g: codes (N, latent) → images (N, 1, 16, 16) in (0, 1)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of x through the code's mean."""
        return self.decode(self.encode(x)[0])


def vae_loss(model: DigitsVAE, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The negative ELBO per image: binary cross-entropy of the reconstruction + KL(q(z|x) ‖ N(0, I))."""
    mu, log_var = model.encode(x)
    z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * log_var).exp()
    reconstruction = F.binary_cross_entropy(model.decode(z), x, reduction="sum")
    kl = -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum()
    return (reconstruction + kl) / len(x)


def train_vae(epochs: int = 100, seed: int = 0, batch_size: int = 64, lr: float = 2e-3,
              verbose: bool = True) -> tuple[DigitsVAE, dict]:
    """Train :class:`DigitsVAE` from scratch on ``data.digits("train")``; returns ``(model in eval mode, report)``.

    Deterministic from ``seed`` (initialisation, batch order and the VAE's sampling noise). The report holds
    the negative ELBO and the mean squared reconstruction error on the held-out test digits.
    """
    from ..data import digits

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = DigitsVAE()
    images = digits("train").images
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=gen)
        total = 0.0
        for i in range(0, len(images), batch_size):
            x = images[order[i:i + batch_size]]
            loss = vae_loss(model, x, gen)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(x)
        if verbose and (epoch + 1) % 25 == 0:
            print(f"digits_vae epoch {epoch + 1}/{epochs}: -ELBO {total / len(images):.2f} "
                  f"({time.time() - start:.0f} s)", flush=True)
    model.eval()
    test = digits("test").images
    with torch.no_grad():
        elbo = vae_loss(model, test, torch.Generator().manual_seed(1)).item()
        mse = F.mse_loss(model(test), test).item()
    report = {"model": "digits_vae", "test_neg_elbo": round(elbo, 2), "test_mse": round(mse, 5),
              "epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr,
              "train_seconds": round(time.time() - start, 1), "torch": torch.__version__,
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads"}
    if verbose:
        print(f"digits_vae: test -ELBO {elbo:.2f}, reconstruction MSE {mse:.5f}", flush=True)
    return model, report


def vae_card(report: dict, n_params: int) -> str:
    return f"""# Model card: `digits_vae`

- **Architecture**: variational autoencoder; encoder 256 → 256 (ReLU) → (μ, log σ²) of an
  {LATENT}-dimensional code; decoder (the generator) {LATENT} → 256 (ReLU) → 256 → sigmoid → (1, 16, 16)
  ({n_params:,} parameters). `model.decode(z)` is the generator g(z) of chapter 10.
- **Input**: a batch `(N, 1, 16, 16)` of images in [0, 1]; codes `(N, {LATENT})`, prior N(0, I).
- **Output**: `model(x)` is the reconstruction through the code's mean; `model.decode(z)` an image.
- **Training data**: `xai_course.data.digits('train')`: scikit-learn's handwritten digits (two thirds),
  resampled to 16x16 in [0, 1].
- **Training**: negative ELBO (binary cross-entropy + KL), Adam (lr {report['lr']}), batch
  {report['batch_size']}, {report['epochs']} epochs, seed {report['seed']}; {report['train_seconds']} s on
  {report['machine']} with torch {report['torch']}.
- **Test accuracy**: not a classifier; on `xai_course.data.digits('test')` (never used in training):
  negative ELBO {report['test_neg_elbo']} nats per image, reconstruction MSE {report['test_mse']}.
- **Reproduce**: `python -m xai_course.models.train digits_vae`.
- **Intended use**: teaching activation maximisation in code space. Not for any real-world decision.
"""


class GaussianPrior(nn.Module):
    """log N(x; μ, Σ) of inputs x (N, *shape), flattened: the "expert" of AM with an expert. Shape (N,)."""

    def __init__(self, mean: torch.Tensor, covariance: torch.Tensor):
        super().__init__()
        self.shape = tuple(mean.shape)
        d = mean.numel()
        self.register_buffer("mean", mean.reshape(d).clone())
        self.register_buffer("covariance", covariance.clone())
        self.register_buffer("precision", torch.linalg.inv(covariance.double()).float())
        _, logdet = torch.linalg.slogdet(covariance.double())
        self.log_norm = float(-0.5 * (d * math.log(2 * math.pi) + logdet))
        self.eval()                      # nothing in it behaves differently in training

    @classmethod
    def fit(cls, images: torch.Tensor, shrinkage: float = 0.1) -> "GaussianPrior":
        """Fit on images (N, *shape): sample mean, Σ = (1 − s) S + s (tr S / d) I (Ledoit-Wolf-style)."""
        x = images.reshape(len(images), -1).double()
        mean = x.mean(0)
        sample = torch.cov(x.T)
        d = x.shape[1]
        cov = (1 - shrinkage) * sample + shrinkage * sample.trace() / d * torch.eye(d, dtype=x.dtype)
        return cls(mean.float().reshape(images.shape[1:]), cov.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = x.reshape(len(x), -1) - self.mean
        return self.log_norm - 0.5 * ((diff @ self.precision) * diff).sum(1)


def digits_prior(shrinkage: float = 0.1) -> GaussianPrior:
    """N(μ, Σ) fitted on ``data.digits("train")`` (16x16): an "expert" log p(x) for chapter 10, in eval mode."""
    from ..data import digits

    return GaussianPrior.fit(digits("train").images, shrinkage).eval()
