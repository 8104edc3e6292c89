"""VAE-USFlow (usfkit.models.vae): the ELBO of Eq. 7 against closed forms, the flow prior's
log-density, the image encoder/decoder shapes, the softplus-clamped NonUSF prior, the
failure diagnosis and a short training on real MVTec AD embeddings (paper §4.4, App. B.4)."""
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import randomise
from usfkit.models import vae
from usfkit.models.flows import AffineCoupling, Flow, GaussianBase, LUAffine, build_flow, channel_mask, make_conditioner
from usfkit.metrics import auroc

torch.set_num_threads(1)
DATA = Path(os.environ.get("USFKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


class LinearGaussianEncoder(nn.Module):
    """q(z|x) = N(A x + a, diag exp(log_var)) with an input-independent variance."""

    def __init__(self, d_in, d_lat):
        super().__init__()
        self.lin = nn.Linear(d_in, d_lat)
        self.log_var = nn.Parameter(0.5 * torch.randn(d_lat))

    def forward(self, x):
        return self.lin(x), self.log_var.expand(len(x), -1)


def linear_model(d_in=5, d_lat=3, sigma=0.7, seed=0):
    """Encoder, decoder and prior all linear-Gaussian: every ELBO term has a closed form."""
    torch.manual_seed(seed)
    prior = Flow([randomise(LUAffine(d_lat, init_scale=1.0), seed=seed)], GaussianBase((d_lat,)))
    model = vae.VAEFlow(LinearGaussianEncoder(d_in, d_lat), nn.Linear(d_lat, d_in), prior, sigma_min=sigma)
    return model.double()


def closed_form_terms(model, x):
    """E_q ln p(x|z), E_q ln q(z|x), E_q ln p_Z(z) for the linear model, exactly."""
    mu, log_var = model.encoder(x)
    s = log_var.exp()                                          # diagonal of the posterior covariance
    W, b = model.decoder.weight, model.decoder.bias
    lu = model.prior.layers[0]
    M, c = lu.matrix(), lu.bias                                 # phi(z) = M z + c
    D, d, var = x.shape[1], mu.shape[1], model.sigma_min**2
    resid = x - mu @ W.T - b
    rec = -0.5 * (D * math.log(2 * math.pi * var) + (resid.pow(2).sum(1) + (W.pow(2) * s[:, None, :]).sum((1, 2))) / var)
    log_q = -0.5 * (log_var + 1 + math.log(2 * math.pi)).sum(1)
    mean_phi = mu @ M.T + c
    log_prior = (-0.5 * (d * math.log(2 * math.pi) + mean_phi.pow(2).sum(1) + (M.pow(2) * s[:, None, :]).sum((1, 2)))
                 + torch.linalg.slogdet(M)[1])
    return {"rec_loglik": rec, "log_q": log_q, "log_prior": log_prior, "elbo": rec - log_q + log_prior}


def test_monte_carlo_elbo_converges_to_closed_form():
    model = linear_model()
    x = torch.randn(3, 5, dtype=torch.float64)
    exact = closed_form_terms(model, x)
    k = 40_000
    with torch.no_grad():
        torch.manual_seed(1)
        mc = model.elbo_terms(x.repeat(k, 1), n_samples=1)        # one sample each: k independent samples
    for name in ("rec_loglik", "log_q", "log_prior", "elbo"):
        samples = mc[name].view(k, 3)
        se = samples.std(0) / math.sqrt(k)
        err = (samples.mean(0) - exact[name]).abs()
        assert (err < 5 * se + 1e-9).all(), f"{name}: MC {samples.mean(0)} vs closed form {exact[name]} (se {se})"
    # the n_samples argument averages the same terms: a 40k-sample estimate is within 5 standard errors too
    with torch.no_grad():
        avg = model.elbo_terms(x, n_samples=k)
    assert torch.allclose(avg["elbo"], exact["elbo"], atol=5 * float(mc["elbo"].view(k, 3).std(0).max()) / math.sqrt(k))


def test_analytic_pieces_exactly():
    """Prior density = the Gaussian N(-M^{-1}c, (M^T M)^{-1}) that a linear flow implies;
    posterior entropy and score parts at z = mu in closed form."""
    model = linear_model()
    x = torch.randn(4, 5, dtype=torch.float64)
    z = torch.randn(6, 3, dtype=torch.float64)
    lu = model.prior.layers[0]
    M, c = lu.matrix().detach(), lu.bias.detach()
    implied = torch.distributions.MultivariateNormal(-torch.linalg.solve(M, c), precision_matrix=M.T @ M)
    assert torch.allclose(model.prior_log_prob(z), implied.log_prob(z), atol=1e-10)
    with torch.no_grad():
        mu, log_var = model.encoder(x)
        parts = model.score(x, "all")
        rec = -torch.distributions.Normal(model.decoder(mu), model.sigma_min).log_prob(x).sum(1)
        post = torch.distributions.Normal(mu, (0.5 * log_var).exp()).log_prob(mu).sum(1)
        ent = torch.distributions.Normal(mu, (0.5 * log_var).exp()).entropy().sum(1)
    assert torch.allclose(parts["reconstruction"], rec, atol=1e-9)
    assert torch.allclose(parts["latent"], -implied.log_prob(mu), atol=1e-9)
    assert torch.allclose(parts["posterior"], post, atol=1e-9)
    assert torch.allclose(parts["combined"], rec - implied.log_prob(mu) + post, atol=1e-9)
    assert torch.allclose(model.entropy(log_var), ent, atol=1e-10)
    with pytest.raises(ValueError, match="part must be"):
        model.score(x, "likelihood")


def test_prior_log_density_is_the_usf_log_prob():
    model = randomise(vae.tabular_vae(12, "additive_lu", latent_dim=4, seed=0, flow_hidden=16, flow_layers=1), scale=0.2)
    assert model.constant_det and model.latent_dim == 4
    x = torch.randn(8, 12)
    with torch.no_grad():
        torch.manual_seed(3)
        terms = model.elbo_terms(x, n_samples=1)
        torch.manual_seed(3)
        mu, log_var = model.encode(x)
        z = mu + (0.5 * log_var).exp() * torch.randn(1, *mu.shape)[0]
        phi, logdet = model.prior(z)
        by_hand = -0.5 * phi.pow(2).sum(1) - 2 * math.log(2 * math.pi) + logdet
    assert torch.allclose(terms["log_prior"], model.prior.log_prob(z), atol=1e-5)
    assert torch.allclose(model.prior_log_prob(z), by_hand, atol=1e-5)
    assert torch.allclose(terms["prior_logdet"], logdet) and float(logdet.std()) < 1e-5  # USF: one determinant
    nonusf = randomise(vae.tabular_vae(12, "affine_lu", latent_dim=4, seed=0, flow_hidden=16, flow_layers=1),
                       scale=0.2)
    assert not nonusf.constant_det
    with torch.no_grad():
        assert float(nonusf.prior(z)[1].std()) > 1e-3                                   # NonUSF: it varies


@pytest.mark.parametrize("coupling", ["additive", "affine", "additive_lu", "affine_lu"])
def test_prior_coupling_is_the_flow_vocabulary(coupling):
    """The prior takes the ``coupling`` words of :func:`usfkit.models.flows.build_flow`; ``constant_det``
    (VAE-USFlow or not) is the prior's, True exactly for the additive couplings."""
    model = vae.tabular_vae(6, coupling, latent_dim=4, seed=0, blocks=2, flow_hidden=8, flow_layers=1)
    assert model.constant_det is coupling.startswith("additive") is model.prior.constant_det
    assert bool(model.prior.lu_layers()) is coupling.endswith("_lu")


def test_seeded_model_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = vae.tabular_vae(6, "affine_lu", latent_dim=4, seed=3, blocks=2, flow_hidden=8, flow_layers=1)
    b = vae.tabular_vae(6, "affine_lu", latent_dim=4, seed=3, blocks=2, flow_hidden=8, flow_layers=1)
    assert torch.equal(torch.get_rng_state(), before)
    torch.testing.assert_close(a.state_dict(), b.state_dict(), rtol=0, atol=0, equal_nan=True)  # NaN: unset score scale


@pytest.mark.parametrize("old", ["usf", "nonusf", "USF", "NonUSF"])
def test_old_prior_names_are_rejected(old):
    with pytest.raises(ValueError, match="'additive_lu': additive coupling in LU-conjugated blocks"):
        vae.tabular_vae(6, old, latent_dim=2)
    with pytest.raises(TypeError):
        vae.tabular_vae(6, prior="usf")


def test_softplus_nonusf_clamp_bounds_log_scales():
    clamp = 2.0
    layer = AffineCoupling(channel_mask(6, 0), make_conditioner((6,), 2, 8, 1), clamp=clamp, activation="softplus")
    x = torch.randn(50, 6)
    y, logdet = layer(x)
    assert torch.equal(y, x) and torch.equal(logdet, torch.zeros(50))       # zero-initialised: identity
    randomise(layer, scale=20.0)
    x = 10 * torch.randn(500, 6)
    y, logdet = layer(x)
    assert logdet.abs().max() <= 3 * clamp + 1e-5                              # 3 transformed coordinates
    assert logdet.abs().max() > 2.5 * clamp                                    # and the bound is reached
    assert torch.allclose(layer.inverse(y), x, atol=1e-3)
    # the prior of VAE-NonUSFlow uses exactly this coupling, clamped at 2.0 (App. B.4)
    prior = vae.make_prior(4, "affine_lu", hidden=8, layers=1)
    couplings = [m for m in prior.modules() if isinstance(m, AffineCoupling)]
    assert len(couplings) == 4 and all(m.activation == "softplus" and m.clamp == 2.0 for m in couplings)
    assert build_flow(4, "affine_lu").layers[0].coupling.activation == "tanh"  # the default is unchanged
    with pytest.raises(ValueError, match="activation"):
        AffineCoupling(channel_mask(4, 0), make_conditioner((4,), 2, 8, 1), activation="relu")


def test_image_encoder_decoder_round_trip_shapes_256():
    model = vae.image_vae(256, "additive_lu", latent_dim=16, pretrained=False, flow_hidden=16, flow_layers=1).eval()
    assert model.encoder.pretrained_loaded is False
    assert model.decoder.n_up == 6                                              # log2(256 / 4)
    assert vae.ConvDecoder(16, 64).n_up == 4
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        mu, log_var = model.encode(x)
        rec = model.decode(mu)
        score = model.score(x)
    assert mu.shape == log_var.shape == (1, 16)
    assert rec.shape == x.shape and score.shape == (1,) and torch.isfinite(score).all()


def test_auto_falls_back_to_random_weights_loudly_and_tries_once(monkeypatch):
    import warnings

    import torchvision.models as tvm

    attempts = []

    def offline(weights=None):
        if weights is not None:
            attempts.append(weights)
            raise OSError("no network")
        return tvm.resnet18()                                                   # small stand-in
    monkeypatch.setattr(tvm, "wide_resnet50_2", offline)
    monkeypatch.setattr(vae, "_WEIGHTS_ERROR", None)                            # no earlier attempt in this process
    with pytest.warns(UserWarning, match="RANDOM BACKBONE WEIGHTS"):
        _, loaded = vae.wide_resnet50_2_trunk("auto")
    assert loaded is False and len(attempts) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                          # the second run: no retry, no warning
        _, loaded = vae.wide_resnet50_2_trunk("auto")
    assert loaded is False and len(attempts) == 1
    with pytest.raises(RuntimeError, match="could not load the ImageNet weights"):
        vae.wide_resnet50_2_trunk(True)


def test_exploding_prior_determinant_is_a_failed_run_with_a_diagnosis():
    model = vae.tabular_vae(8, "affine_lu", latent_dim=2, seed=0, flow_hidden=8, flow_layers=1)
    with torch.no_grad():
        model.prior.layers[-1].log_abs_u.fill_(200.0)                          # det = e^400: overflows
    result = vae.train_vae(model, torch.randn(64, 8), lr=1e-3, max_epochs=2, batch_size=32, progress="none")
    assert not result.ok
    assert "determinant exploded" in result.failure and "log_prior" in result.failure


def test_short_training_on_mvtec_bottle_embeddings():
    path = DATA / "adbench_mvtec_resnet18" / "MVTec-AD_bottle.npz"
    if not path.exists():
        pytest.skip(f"{path} missing (set USFKIT_DATA)")
    data = np.load(path)
    x, y = torch.tensor(data["X"]), torch.tensor(data["y"])
    normal = torch.where(y == 0)[0][torch.randperm(int((y == 0).sum()), generator=torch.Generator().manual_seed(0))]
    n_train = int(0.7 * len(normal))
    test = torch.cat([normal[n_train:], torch.where(y == 1)[0]])
    model = vae.tabular_vae(512, "additive_lu", seed=0)
    result = vae.train_vae(model, x[normal[:n_train]], lr=1e-3, max_epochs=30, batch_size=64, progress="none")
    assert result.ok, result.failure
    scores = model.score(x[test], "all")
    aucs = {k: auroc(y[test], s) for k, s in scores.items()}
    assert aucs["combined"] > 0.8, aucs
    assert aucs["latent"] > 0.6, aucs


def test_balanced_score_standardises_both_parts_on_the_training_normals():
    """The "balanced" score: NaN before training sets its scale; on the training normals each
    standardised part has mean 0 and std 1; and unlike the ELBO sum it does not change when
    sigma_min rescales the reconstruction term (the reconstruction part is affine in 1/sigma_min^2)."""
    gen = torch.Generator().manual_seed(0)
    x_train, x_test = torch.randn(300, 8, generator=gen), 2 * torch.randn(100, 8, generator=gen)
    model = randomise(vae.tabular_vae(8, "additive_lu", latent_dim=4, seed=0, blocks=2, flow_hidden=16,
                                      flow_layers=1), scale=0.1)
    model.set_standardization(x_train)
    assert torch.isnan(model.score(x_test, "balanced")).all()
    model.set_part_scale(x_train)
    parts = model.score(x_train, "all")
    z = torch.stack([(parts[p] - m) / s for p, m, s in zip(("reconstruction", "latent"), model.part_mean,
                                                           model.part_std)], 1).double()
    assert torch.allclose(z.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(z.std(0), torch.ones(2, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(parts["balanced"].double(), z.sum(1), atol=1e-5)
    before = model.score(x_test, "all")
    model.sigma_min = 1.0  # ten times the noise level: the reconstruction term shrinks a hundredfold
    model.set_part_scale(x_train)
    after = model.score(x_test, "all")
    assert torch.allclose(after["balanced"], before["balanced"], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(after["combined"], before["combined"], rtol=1e-2)


# --------------------------------------------------------------------------
# chapter 06's reading of its runs (usfkit.experiments.vae): one score, the others as a sensitivity table
# --------------------------------------------------------------------------
def _emb_runs(usf, non, failed=()):
    """A runs_frame-like table: per class, per seed, the balanced AUC-ROC of each prior (``usf[c][s]``, ``non[c][s]``);
    the ELBO and the reconstruction part equal 0.8 for both priors (they cannot tell them apart), the latent part
    is the balanced one minus 0.1.  ``failed``: (class, method, seed) runs that failed."""
    import pandas as pd

    rows = []
    for method, table in (("VAE-USFlow", usf), ("VAE-NonUSFlow", non)):
        for cls, values in table.items():
            for seed, v in enumerate(values):
                ok = (cls, method, seed) not in failed
                rows.append({"class": cls, "method": method, "seed": seed, "ok": ok, "failure": None if ok else "nan",
                             "auroc_balanced": v if ok else None, "auroc_combined": 0.8 if ok else None,
                             "auroc_reconstruction": 0.8 if ok else None, "auroc_latent": v - 0.1 if ok else None})
    return pd.DataFrame(rows)


def test_score_sensitivity_and_identical_text_on_the_same_pairs():
    from usfkit.experiments import vae as ve

    runs = _emb_runs({"a": [0.9, 0.8], "b": [0.7, 0.7]}, {"a": [0.85, 0.8], "b": [0.6, 0.75]})
    scores = ve.embedding_scores(runs)
    assert list(scores.columns) == ["class", "seed", "method", *ve.SCORE_LABELS]
    table = ve.score_sensitivity(scores, ["class", "seed"])
    assert table.index[0] == "balanced (primary)" and table.index.name == "score (4 pairs)"
    assert list(table.columns) == ["VAE-USFlow (%)", "VAE-NonUSFlow (%)", "mean Δ (pp)", "USF higher / same / lower"]
    bal = table.loc["balanced (primary)"]
    assert bal["VAE-USFlow (%)"] == pytest.approx(77.5) and bal["mean Δ (pp)"] == pytest.approx(2.5)
    assert bal["VAE-NonUSFlow (%)"] == 75.0  # 1 decimal: a narrow table
    assert bal["USF higher / same / lower"] == "2 / 1 / 1"
    assert table.loc["negative ELBO", "USF higher / same / lower"] == "0 / 4 / 0"
    assert table.loc["negative ELBO", "mean Δ (pp)"] == 0
    text = ve.identical_text(scores, ["class", "seed"])
    assert "reconstruction part alone in 4 of 4 runs" not in text  # counted per run: 8 runs
    assert "equals that of its reconstruction part alone in 8 of 8 runs" in text
    assert "twin's (to 1e-9) in 4 of 4 pairs" in text and "Under the balanced score (the book's) the two priors " \
           "give identical AUC-ROCs in 1 of 4 pairs" in text
    # a failed run leaves its pair out (its twin has no partner), not the table
    failed = ve.embedding_scores(_emb_runs({"a": [0.9, 0.8]}, {"a": [0.85, 0.8]}, failed={("a", "VAE-NonUSFlow", 0)}))
    assert ve.score_sensitivity(failed, ["class", "seed"]).index.name == "score (1 pairs)"
    assert ve.score_sensitivity(failed[failed["method"] == "VAE-USFlow"], ["class", "seed"]).empty


def test_paper_settings_text_reads_figure_11_and_app_d_from_the_runs():
    from usfkit.experiments import vae as ve

    usf = {"a": [0.90, 0.92, 0.94], "b": [0.70, 0.70, 0.70], "c": [0.60, 0.62, 0.64]}
    non = {"a": [0.80, 0.90, 0.85], "b": [0.72, 0.74, 0.76], "c": [0.40, 0.45, 0.50]}
    text = ve.paper_settings_text(_emb_runs(usf, non, failed={("c", "VAE-NonUSFlow", 2)}))
    assert "What the 18 committed full-profile runs of experiment 1 show (3 classes x 2 priors x 3 seeds" in text
    # per-class means: USF 92, 70, 62; NonUSF 85, 74, 42.5 (c: two valid runs)
    assert ("averages 74.67 % against VAE-NonUSFlow's 67.17 % (means over classes): a mean difference of +7.50 pp "
            "(median +7.00 pp), not significantly higher (p = 0.500)") in text  # 3 pairs: Wilcoxon cannot go lower
    assert "VAE-USFlow is higher on 2 of 3 classes and lower on 1" in text
    # the same by run pair (class and seed; c's seed 2 has no twin): USF higher in 5, equal in 0, lower in 3 of 8
    assert "counted by run pair instead, higher in 5, equal in 0 and lower in 3 of 8 pairs" in text
    assert "*classes* (each class's mean over its seeds, 3 pairs) and *run pairs*" in text
    # stds over seeds (pp): USF 2, 0, 2; NonUSF 5, 2, 3.54 -> USF steadier on all 3, but 3 pairs test nothing
    assert "not significantly smaller (p = 0.250); VAE-USFlow varies less on 3 of 3 classes and more on 0" in text
    assert text.count("- **Paper: ") == 3 and text.count("  - Ours: ") == 3
    assert "0 of 9 VAE-USFlow runs and 1 of 9 VAE-NonUSFlow runs failed" in text
    assert "below chance: c (VAE-NonUSFlow)" in text


def test_class_table_and_weights_text():
    import pandas as pd
    from usfkit.experiments import vae as ve

    summary = ve.summarize(_emb_runs({"b": [0.9, 0.8], "a": [0.7, 0.7]}, {"b": [0.85, 0.8], "a": [0.6, 0.75]},
                                     failed={("a", "VAE-NonUSFlow", 0), ("a", "VAE-NonUSFlow", 1)}))
    table = ve.class_table(summary)
    assert list(table.index) == ["b", "a"]  # the summary's order
    assert table.loc["b", ("AUC-ROC (%)", "VAE-USFlow")] == "85.0 ± 7.1"
    assert table.loc["a", ("AUC-ROC (%)", "VAE-NonUSFlow")] == "no valid run"
    assert table.loc["a", ("valid runs", "VAE-NonUSFlow")] == "0/2"
    assert ve.weights_text(pd.DataFrame({"pretrained_loaded": [True, True]})).startswith("All 2 image runs loaded")
    assert "1 of the 2 image runs ran with **random** encoder weights" in ve.weights_text(
        pd.DataFrame({"pretrained_loaded": [True, False]}))


def test_image_run_table_is_narrow_and_in_percent():
    import pandas as pd
    from usfkit.experiments import vae as ve

    images = pd.DataFrame({"class": ["bottle", "bottle"], "method": ["VAE-USFlow", "VAE-NonUSFlow"], "seed": [0, 0],
                           "epochs_run": [3, 2], "ok": [True, False], "pretrained_loaded": [False, False],
                           "auroc_balanced": [0.81234, None], "auroc_combined": [0.7, None]})
    table = ve.image_run_table(images)
    assert list(table.columns) == ["class", "prior", "seed", "epochs", "ImageNet weights", "AUC-ROC, balanced (%)"]
    assert table["AUC-ROC, balanced (%)"].tolist() == ["81.2", "failed"]
    assert table["ImageNet weights"].tolist() == ["no", "no"]


def test_image_model_build_drops_the_download_line_only_when_the_download_failed(capsys):
    import sys
    from types import SimpleNamespace

    from usfkit.experiments import vae as ve

    def build(loaded):
        def make():
            sys.stderr.write("Downloading: \"https://example.org/w.pth\" to /root/.cache/w.pth\n")
            sys.stderr.write("UserWarning: random weights\n")
            print("built")
            return SimpleNamespace(encoder=SimpleNamespace(pretrained_loaded=loaded))
        return make
    ve._quietly(build(False))
    out = capsys.readouterr()
    assert out.out == "built\n" and out.err == "UserWarning: random weights\n"
    ve._quietly(build(True))
    assert "Downloading" in capsys.readouterr().err  # a download that worked is said as usual
