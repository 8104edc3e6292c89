import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from usfkit.data import AsymmetricGaussianMixture, anomaly_data, data_dir, moons, subspace_data


@pytest.mark.parametrize("dim", [1, 2, 3, 8, 32])
def test_mixture_log_density_matches_scipy(dim):
    gm = AsymmetricGaussianMixture(dim)
    x, _ = gm.sample(500, seed=3)
    x = x.numpy().astype(np.float64)
    theta = np.full(dim, 0.5)
    theta[: (dim + 1) // 2] = 5.0
    ref = np.log(0.5 * multivariate_normal(np.ones(dim), np.eye(dim)).pdf(x)
                 + 0.5 * multivariate_normal(-np.ones(dim), np.diag(theta)).pdf(x))
    np.testing.assert_allclose(gm.log_prob(x), ref, rtol=1e-10, atol=1e-10)


def test_mixture_matches_appendix_c():
    gm = AsymmetricGaussianMixture(8)
    np.testing.assert_array_equal(gm.means, [np.ones(8), -np.ones(8)])
    assert np.prod(gm.variances[0]) == 1.0
    assert np.prod(gm.variances[1]) == pytest.approx(2.5 ** (8 / 2))  # det Sigma_2 = 2.5^(d/2)


def test_mixture_samples_have_the_stated_moments():
    gm = AsymmetricGaussianMixture(4)
    x, comp = gm.sample(40000, seed=0)
    x, comp = x.numpy(), comp.numpy()
    assert comp.mean() == pytest.approx(0.5, abs=0.01)
    np.testing.assert_allclose(x[comp == 1].var(0), [5.0, 5.0, 0.5, 0.5], rtol=0.05)
    np.testing.assert_allclose(x[comp == 0].mean(0), np.ones(4), atol=0.03)


def test_mixture_is_far_from_tail_in_high_dimension():
    gm = AsymmetricGaussianMixture(128)
    lp = gm.log_prob(gm.sample(100, seed=0)[0].numpy())
    assert np.isfinite(lp).all()


def test_mixture_rejects_bad_arguments():
    with pytest.raises(ValueError):
        AsymmetricGaussianMixture(0)
    with pytest.raises(ValueError):
        AsymmetricGaussianMixture(2, weights=(0.7, 0.7))


def test_moons_with_outliers():
    x, y = moons(300, n_outliers=20, seed=0)
    assert x.shape == (320, 2) and int(y.sum()) == 20
    assert abs(x[y == 0].mean().item()) < 1e-5


def test_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("USFKIT_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("USFKIT_DATA")
    assert "usfkit" in str(data_dir())


def test_anomalies_lie_below_the_density_threshold():
    data = anomaly_data(4, 500, 200, 50, quantile=0.02, seed=0)
    assert data["x_test"].shape == (250, 4) and int(data["y_test"].sum()) == 50
    logp = AsymmetricGaussianMixture(4).log_prob(data["x_test"].numpy())
    assert (logp[data["y_test"].numpy() == 1] < data["log_density_threshold"]).all()


def test_subspace_data_is_rank_deficient():
    sub = subspace_data(8, 3, 300, 100, seed=0)
    assert sub["x_train"].shape == (300, 8) and sub["x_test"].shape == (100, 8)
    assert torch.linalg.matrix_rank(sub["x_train"].double(), atol=1e-4) == 3
    q = sub["basis"]
    assert torch.allclose(q.T @ q, torch.eye(3), atol=1e-5)
    with pytest.raises(ValueError):
        subspace_data(4, 4, 10, 10)
