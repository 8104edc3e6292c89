"""VAE-USFlow: a variational autoencoder whose prior is a trainable uniformly scaling flow.

Paper: Abu Zaid et al., "On Uniformly Scaling Flows", arXiv 2510.09452, §4.4 and App. B.4.

A USF is a diffeomorphism, so its latent space has the input's dimension.  VAE-USFlow
compresses first and applies the flow in the compressed space.  The generative process
(App. B.4) is

    B ~ N(0, I),    Z = phi^{-1}(B),    X | Z ~ N(dec(Z), sigma_min^2 I),

with a trainable flow ``phi`` (USFlow, ``coupling="additive_lu"``, or NonUSFlow, ``"affine_lu"``,
for the baseline; see :data:`usfkit.models.flows.COUPLINGS`) and a small
``sigma_min``.  The encoder is the Gaussian posterior ``q(z|x) = N(mu(x), diag sigma^2(x))``.
Everything is trained end to end on the ELBO of Eq. 7 with the reparameterisation
trick ``z = mu + sigma * eps``::

    ELBO(x) = E_q[ ln N(x; dec(z), sigma_min^2 I)            (reconstruction log-likelihood)
                   - ln N(z; mu(x), diag sigma^2(x))         (log q: minus the encoder entropy)
                   + ln N(phi(z); 0, I) + ln|det J_phi(z)| ] (prior log-density ln p_Z(z))

:meth:`VAEFlow.elbo_terms` returns the three terms separately.

Anomaly score (§4.4 "we combine the latent likelihood with a reconstruction score"; the
paper does not say how).  We evaluate the ELBO's integrand once, at the posterior mean
``z = mu(x)`` (no sampling noise, so the score is deterministic):

    score(x) = -ln N(x; dec(mu), sigma_min^2 I)     part "reconstruction"
               -ln p_Z(mu)                          part "latent"      (the USF likelihood of the code)
               +ln q(mu | x)                        part "posterior"   (= -sum ln sigma_j(x) + const)

The sum ("combined") is the negative one-sample ELBO at the posterior mode, i.e. a
single-point estimate of ``-ln p_X(x)``, the model's own negative log-density: the
same density-level-set score as for a plain flow (Eq. 1).  It weights reconstruction
and latent likelihood by the model's own noise levels.  With a small ``sigma_min`` that
weighting is lopsided: the reconstruction term carries a factor ``1 / sigma_min^2`` over
every input dimension and swamps the latent term, so the sum ranks inputs by
reconstruction error alone and the prior (USF or not) cannot show in it.  Part
"balanced" therefore standardises the reconstruction and the latent part on the training
normals (mean and standard deviation of each, set by :func:`train_vae`) and adds them:
each part counts in units of its own spread on normal data.  Higher = more anomalous for
every part.

Inputs are standardised inside the model (per feature for vectors, per channel for
images) with statistics of the training set, which :func:`train_vae` sets; so
``sigma_min`` is in units of the training data's standard deviation.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torch import Tensor, nn

from ..rng import seeded
from ..train import FitResult, TrainModule, fit
from .flows import Flow, build_flow

__all__ = ["VAEFlow", "VAEModule", "train_vae", "tabular_vae", "image_vae", "make_prior", "default_latent_dim",
           "gaussian_log_prob", "GaussianHead", "MLPEncoder", "MLPDecoder", "ImageEncoder", "ConvDecoder",
           "wide_resnet50_2_trunk", "SCORE_PARTS"]

LOG_2PI = math.log(2 * math.pi)
SCORE_PARTS = ("combined", "latent", "reconstruction", "posterior", "balanced")


def gaussian_log_prob(x: Tensor, mean: Tensor, log_var: Tensor | float) -> Tensor:
    """``ln N(x; mean, diag exp(log_var))`` summed over all but the batch axis -> ``(batch,)``."""
    log_var = torch.as_tensor(log_var, dtype=x.dtype, device=x.device)
    ll = -0.5 * (LOG_2PI + log_var + (x - mean).pow(2) * torch.exp(-log_var))
    return ll.flatten(1).sum(1)


# --------------------------------------------------------------------------
# Encoders and decoders
# --------------------------------------------------------------------------
class GaussianHead(nn.Module):
    """Linear map from features to the posterior mean and log-variance.  The
    log-variance is bounded, ``log_var = 8 tanh(raw / 8)``, so ``sigma`` stays in
    ``[e^-4, e^4]`` and the reparameterised sample cannot overflow."""

    def __init__(self, features: int, latent_dim: int):
        super().__init__()
        self.mean = nn.Linear(features, latent_dim)
        self.log_var = nn.Linear(features, latent_dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean(h), 8.0 * torch.tanh(self.log_var(h) / 8.0)


class MLPEncoder(nn.Module):
    """Vectors (tabular rows, 512-d image embeddings): ``in -> 256 -> 256 -> (mu, log_var)``
    with LayerNorm + SiLU between the linear layers."""

    def __init__(self, in_dim: int, latent_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        sizes, mods = [in_dim, *hidden], []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Linear(a, b), nn.LayerNorm(b), nn.SiLU()]
        self.body = nn.Sequential(*mods)
        self.head = GaussianHead(sizes[-1], latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.body(x))


class MLPDecoder(nn.Module):
    """The mirror image: ``latent -> 256 -> 256 -> in`` (linear output, the Gaussian mean)."""

    def __init__(self, latent_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        sizes, mods = [latent_dim, *hidden], []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Linear(a, b), nn.LayerNorm(b), nn.SiLU()]
        self.net = nn.Sequential(*mods, nn.Linear(sizes[-1], out_dim))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


_WEIGHTS_ERROR: Exception | None = None  # why the ImageNet weights could not be loaded in this process, if so


def wide_resnet50_2_trunk(pretrained: bool | str = "auto") -> tuple[nn.Module, bool]:
    """torchvision's Wide-ResNet-50-2 without its classifier (outputs 2048 features) and
    whether ImageNet weights were loaded.

    ``pretrained``: ``True`` loads ``Wide_ResNet50_2_Weights.DEFAULT`` (downloading them
    once into torch's cache) and raises if that fails; ``False`` uses random weights;
    ``"auto"`` tries to load them and falls back to random weights with a loud warning; after one
    failed attempt it does not try again in the same process (one download attempt, one warning).
    """
    from torchvision.models import Wide_ResNet50_2_Weights, wide_resnet50_2

    global _WEIGHTS_ERROR
    if pretrained not in (True, False, "auto"):
        raise ValueError(f"pretrained must be True, False or 'auto', got {pretrained!r}")
    net, loaded = None, False
    if pretrained is True or (pretrained == "auto" and _WEIGHTS_ERROR is None):  # "auto" tries once per process
        try:
            net, loaded = wide_resnet50_2(weights=Wide_ResNet50_2_Weights.DEFAULT), True
        except Exception as err:  # offline, proxy, corrupt cache, ...
            _WEIGHTS_ERROR = err
            if pretrained is True:
                raise RuntimeError(
                    "could not load the ImageNet weights of Wide-ResNet-50-2 "
                    f"({type(err).__name__}: {err}). Connect to the internet once (torchvision caches "
                    "them under ~/.cache/torch), or pass pretrained=False/'auto' for random weights.") from err
            warnings.warn(
                "RANDOM BACKBONE WEIGHTS: VAE-Flow image encoder: ImageNet weights of Wide-ResNet-50-2 could NOT be "
                f"loaded ({type(err).__name__}). Using randomly initialised weights: results are NOT comparable "
                "to the paper's pretrained encoder.", stacklevel=2)
    if net is None:
        net = wide_resnet50_2(weights=None)
    net.fc = nn.Identity()
    return net, loaded


class ImageEncoder(nn.Module):
    """App. B.4's encoder: Wide-ResNet-50-2 (ImageNet weights when available) and a final
    fully connected layer to the latent size.  ``pretrained_loaded`` records whether the
    ImageNet weights were actually loaded; ``train_backbone=False`` freezes the trunk."""

    def __init__(self, latent_dim: int, pretrained: bool | str = "auto", train_backbone: bool = True):
        super().__init__()
        self.backbone, self.pretrained_loaded = wide_resnet50_2_trunk(pretrained)
        self.backbone.requires_grad_(train_backbone)
        self.head = GaussianHead(2048, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.backbone(x))


class ConvDecoder(nn.Module):
    """Transposed-convolution decoder: ``z -> linear -> (C0, s0, s0)`` and then
    ``log2(image_size / s0)`` upsampling layers (stride 2, channels halved each time,
    BatchNorm + SiLU), a final 3x3 convolution to the image channels.  The depth thus
    follows the compression ratio ``image_size / s0`` (App. B.4: "the number of layers
    of the decoder is based on the compression ratio")."""

    def __init__(self, latent_dim: int, image_size: int = 256, channels: int = 3, start_size: int = 4,
                 start_channels: int = 256, min_channels: int = 16):
        super().__init__()
        ratio = image_size / start_size
        n_up = round(math.log2(ratio))
        if n_up < 1 or 2**n_up * start_size != image_size:
            raise ValueError(f"image_size / start_size must be a power of two >= 2, got {image_size}/{start_size}")
        self.n_up, self.start_size, self.start_channels = n_up, start_size, start_channels
        self.project = nn.Linear(latent_dim, start_channels * start_size**2)
        mods, c = [], start_channels
        for _ in range(n_up):
            c_out = max(min_channels, c // 2)
            mods += [nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.SiLU()]
            c = c_out
        self.net = nn.Sequential(*mods, nn.Conv2d(c, channels, 3, padding=1))

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).view(-1, self.start_channels, self.start_size, self.start_size)
        return self.net(h)


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------
class VAEFlow(nn.Module):
    """VAE with a flow prior (App. B.4): ``encoder(x) -> (mu, log_var)``, ``decoder(z) -> mean
    of x``, ``prior``: a :class:`usfkit.models.flows.Flow` on the latent space with base N(0, I).

    ``constant_det`` (the prior's) tells whether this is VAE-USFlow (True) or VAE-NonUSFlow.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: Flow, sigma_min: float = 0.1,
                 n_samples: int = 1):
        super().__init__()
        if sigma_min <= 0:
            raise ValueError(f"sigma_min must be > 0, got {sigma_min}")
        self.encoder, self.decoder, self.prior = encoder, decoder, prior
        self.sigma_min, self.n_samples = float(sigma_min), int(n_samples)
        self.register_buffer("x_mean", torch.zeros(()))
        self.register_buffer("x_scale", torch.ones(()))
        # mean and std of the (reconstruction, latent) parts on the training normals: the "balanced" score
        self.register_buffer("part_mean", torch.full((2,), float("nan")))
        self.register_buffer("part_std", torch.full((2,), float("nan")))

    @property
    def latent_dim(self) -> int:
        return self.prior.base.dim

    @property
    def constant_det(self) -> bool:
        """Whether the prior is uniformly scaling: one log-determinant for every code."""
        return self.prior.constant_det

    # -- input standardisation ------------------------------------------------
    @torch.no_grad()
    def set_standardization(self, x_train: Tensor) -> None:
        """Mean and standard deviation per feature (vectors) or per channel (images) of the
        training data; constant features keep scale 1."""
        dims = [0] + list(range(2, x_train.dim()))
        mean = x_train.float().mean(dims, keepdim=True)[0]
        std = x_train.float().std(dims, keepdim=True)[0]
        self.x_mean = mean
        self.x_scale = torch.where(std > 1e-8, std, torch.ones_like(std))

    def standardize(self, x: Tensor) -> Tensor:
        return (x - self.x_mean) / self.x_scale

    # -- the pieces of Eq. 7 ----------------------------------------------------
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance for raw inputs ``x``."""
        return self.encoder(self.standardize(x))

    def decode(self, z: Tensor) -> Tensor:
        """Mean of ``p(x|z)`` in standardised units."""
        return self.decoder(z)

    def rec_log_lik(self, xs: Tensor, z: Tensor) -> Tensor:
        """``ln N(xs; dec(z), sigma_min^2 I)`` for standardised inputs ``xs``."""
        return gaussian_log_prob(xs, self.decode(z), 2 * math.log(self.sigma_min))

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """``ln p_Z(z) = ln N(phi(z); 0, I) + ln|det J_phi(z)|`` (change of variables, Eq. 3)."""
        return self.prior.log_prob(z)

    @staticmethod
    def entropy(log_var: Tensor) -> Tensor:
        """Closed-form entropy of ``N(mu, diag exp(log_var))``; ``E_q[-ln q] = entropy``."""
        return 0.5 * (log_var + 1.0 + LOG_2PI).sum(1)

    def elbo_terms(self, x: Tensor, n_samples: int | None = None) -> dict[str, Tensor]:
        """Monte-Carlo ELBO of Eq. 7 with ``n_samples`` reparameterised samples per input.

        Returns ``(batch,)`` tensors: ``rec_loglik`` (E ln p(x|z)), ``log_q`` (E ln q(z|x)),
        ``log_prior`` (E ln p_Z(z)), ``prior_logdet`` (E ln|det J_phi(z)|), ``entropy``
        (closed form, for reference), and ``elbo = rec_loglik - log_q + log_prior``.
        """
        k = n_samples or self.n_samples
        xs = self.standardize(x)
        mu, log_var = self.encoder(xs)
        eps = torch.randn((k, *mu.shape), dtype=mu.dtype, device=mu.device)
        z = (mu + torch.exp(0.5 * log_var) * eps).flatten(0, 1)  # (k * batch, latent)
        rep = lambda t: t.unsqueeze(0).expand(k, *t.shape).flatten(0, 1)  # noqa: E731
        rec = self.rec_log_lik(rep(xs), z)
        log_q = gaussian_log_prob(z, rep(mu), rep(log_var))
        phi_z, logdet = self.prior(z)
        log_prior = self.prior.base.log_prob(phi_z) + logdet
        mean_k = lambda t: t.view(k, -1).mean(0)  # noqa: E731
        terms = {"rec_loglik": mean_k(rec), "log_q": mean_k(log_q), "log_prior": mean_k(log_prior),
                 "prior_logdet": mean_k(logdet), "entropy": self.entropy(log_var)}
        terms["elbo"] = terms["rec_loglik"] - terms["log_q"] + terms["log_prior"]
        return terms

    def loss(self, x: Tensor) -> Tensor:
        """The training objective: negative ELBO averaged over the batch."""
        return -self.elbo_terms(x)["elbo"].mean()

    # -- anomaly scores -----------------------------------------------------------
    def score_parts(self, x: Tensor) -> dict[str, Tensor]:
        """All parts of the anomaly score at ``z = mu(x)`` (see the module docstring)."""
        xs = self.standardize(x)
        mu, log_var = self.encoder(xs)
        parts = {"reconstruction": -self.rec_log_lik(xs, mu),
                 "latent": -self.prior_log_prob(mu),
                 "posterior": gaussian_log_prob(mu, mu, log_var)}
        parts["combined"] = parts["reconstruction"] + parts["latent"] + parts["posterior"]
        z = (torch.stack([parts["reconstruction"], parts["latent"]], 1) - self.part_mean) / self.part_std
        parts["balanced"] = z.sum(1)  # NaN until set_part_scale has run
        return parts

    @torch.no_grad()
    def set_part_scale(self, x_train: Tensor, batch_size: int = 256) -> None:
        """Mean and standard deviation of the reconstruction and latent parts on ``x_train`` (the
        training normals), which the "balanced" score standardises both parts with."""
        parts = self.score(x_train, "all", batch_size)
        both = torch.stack([parts["reconstruction"], parts["latent"]], 1).double()
        self.part_mean.copy_(both.mean(0))
        self.part_std.copy_(both.std(0).clamp_min(1e-12))

    @torch.no_grad()
    def score(self, x: Tensor, part: str = "combined", batch_size: int = 256) -> Tensor:
        """Anomaly score (higher = more anomalous) of ``part`` in ``combined``, ``latent``,
        ``reconstruction``, ``posterior``; or ``part="all"`` for a dict of all of them."""
        if part not in (*SCORE_PARTS, "all"):
            raise ValueError(f"part must be one of {SCORE_PARTS} or 'all', got {part!r}")
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        chunks = [self.score_parts(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
        self.train(was_training)
        out = {k: torch.cat([c[k] for c in chunks]).cpu() for k in SCORE_PARTS}
        return out if part == "all" else out[part]


# --------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------
def make_prior(latent_dim: int, coupling: str, blocks: int = 4, hidden: int = 256, layers: int = 4,
               clamp: float = 2.0, seed: int | None = None) -> Flow:
    """The latent prior, :func:`usfkit.models.flows.build_flow` with ``coupling``: ``"additive_lu"`` =
    USFlow (VAE-USFlow), ``"affine_lu"`` = NonUSFlow (VAE-NonUSFlow), its affine couplings with
    softplus activation clamped at ``clamp`` (App. B.4).  Defaults: the shared configuration of
    §5.1.1 (4 blocks, conditioners with 4 hidden layers of width 256)."""
    return build_flow(latent_dim, coupling=coupling, blocks=blocks, hidden=hidden, layers=layers, clamp=clamp,
                      affine_activation="softplus", seed=seed)


def default_latent_dim(dim: int) -> int:
    """Latent size for ``dim`` input features: ``dim // 4`` (a fourfold compression), at
    least 2 (a coupling layer needs two channels) and at most 32."""
    return max(2, min(32, dim // 4))


def tabular_vae(dim: int, coupling: str, latent_dim: int | None = None, seed: int = 0, *,
                sigma_min: float = 0.1, hidden: Sequence[int] = (256, 256), blocks: int = 4,
                flow_hidden: int = 256, flow_layers: int = 4, clamp: float = 2.0, n_samples: int = 1) -> VAEFlow:
    """VAE-USFlow (``coupling="additive_lu"``) or VAE-NonUSFlow (``"affine_lu"``) for ``dim``-dimensional
    vectors: MLP encoder/decoder (``dim -> 256 -> 256 -> latent``), flow prior as in §5.1.1,
    ``latent_dim`` by :func:`default_latent_dim` unless given.  Train with :func:`train_vae`,
    then ``model.score(x)``."""
    latent_dim = latent_dim or default_latent_dim(dim)
    with seeded(seed):
        encoder, decoder = MLPEncoder(dim, latent_dim, hidden), MLPDecoder(latent_dim, dim, hidden)
    flow = make_prior(latent_dim, coupling, blocks, flow_hidden, flow_layers, clamp, seed=seed)
    return VAEFlow(encoder, decoder, flow, sigma_min, n_samples)


def image_vae(image_size: int, coupling: str, latent_dim: int = 128, seed: int = 0, *,
              pretrained: bool | str = "auto", train_backbone: bool = True, sigma_min: float = 0.1,
              start_size: int = 4, blocks: int = 4, flow_hidden: int = 256, flow_layers: int = 4,
              clamp: float = 2.0, n_samples: int = 1) -> VAEFlow:
    """App. B.4's image model: Wide-ResNet-50-2 encoder + linear projection to ``latent_dim``,
    transposed-convolution decoder with ``log2(image_size / start_size)`` upsampling layers,
    flow prior with ``coupling`` (as :func:`make_prior`).  ``model.encoder.pretrained_loaded`` says whether ImageNet
    weights were loaded."""
    with seeded(seed):
        encoder = ImageEncoder(latent_dim, pretrained, train_backbone)
        decoder = ConvDecoder(latent_dim, image_size, 3, start_size)
    flow = make_prior(latent_dim, coupling, blocks, flow_hidden, flow_layers, clamp, seed=seed)
    return VAEFlow(encoder, decoder, flow, sigma_min, n_samples)


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------
class VAEModule(TrainModule):
    """Lightning glue: minimises the negative ELBO; logs its terms per epoch and keeps the
    last batch's terms so that a diverged run can say which term blew up."""

    compilable = True

    def __init__(self, model: VAEFlow, lr: float = 1e-3, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.model = model
        self._last: dict[str, Tensor] | None = None

    def loss(self, x: Tensor) -> Tensor:
        terms = self.model.elbo_terms(x)
        self._last = {k: v.detach() for k, v in terms.items()}
        return -terms["elbo"].mean()

    def step_terms(self) -> dict[str, Tensor]:
        return {k: self._last[k].mean() for k in ("rec_loglik", "log_q", "log_prior")}

    def diagnosis(self) -> str:
        if self._last is None:
            return ""
        bad = [k for k in ("rec_loglik", "log_q", "log_prior", "prior_logdet")
               if not torch.isfinite(self._last[k]).all()]
        ld = self._last["prior_logdet"]
        finite = ld[torch.isfinite(ld)]
        biggest = f"{finite.abs().max().item():.3g}" if len(finite) else "nan"
        text = f" Non-finite ELBO terms in the last batch: {', '.join(bad) or 'none'}; largest |ln det J_phi(z)|: {biggest}."
        if "prior_logdet" in bad or "log_prior" in bad:
            text += (" The flow prior's determinant exploded (App. D: exploding determinants of affine "
                     "coupling + LU layers): lower the learning rate, tighten the clamp, or use a uniformly scaling "
                     "prior (coupling='additive_lu').")
        else:
            text += " Lower the learning rate or raise sigma_min."
        return text


def train_vae(model: VAEFlow, x_train: Tensor, x_val: Tensor | None = None, *, lr: float = 1e-3,
              weight_decay: float = 0.0, standardize: bool = True, **fit_kwargs) -> FitResult:
    """Train ``model`` end to end on the negative ELBO (App. B.4) with :func:`usfkit.train.fit`
    (early stopping, one progress display, NaN/inf -> failed :class:`~usfkit.train.FitResult`).
    ``standardize`` first sets the model's input statistics from ``x_train``; a successful run
    then sets the scale of the "balanced" score on ``x_train`` (:meth:`VAEFlow.set_part_scale`)."""
    if standardize:
        model.set_standardization(x_train)
    result = fit(VAEModule(model, lr, weight_decay), x_train, x_val, **fit_kwargs)
    if result.ok:
        model.set_part_scale(x_train)
    return result
