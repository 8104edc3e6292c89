"""Proposition 1 (App. B.3): the loss of F_alpha three ways, and the inverted ranking."""
import pytest

from usfkit import proposition1


@pytest.mark.parametrize("dim", [3, 5, 10, 50])
def test_prop1_closed_form_matches_quadrature(dim):
    for alpha in (0.5, 2.0):
        assert proposition1.quadrature(dim, alpha) == pytest.approx(proposition1.closed_form(dim, alpha), rel=1e-6)


def test_prop1_needs_d_above_two():
    with pytest.raises(ValueError):
        proposition1.closed_form(2, 1.0)


@pytest.mark.parametrize("dim", [5, 10, 50])
def test_prop1_monte_carlo_matches_closed_form(dim):
    rows = proposition1.monte_carlo(dim, [0.5, 1.0, 4.0], n=200_000, seed=1)
    for r in rows:
        assert r["finite_variance"]
        assert r["rel_error"] < 0.03
        # within 5 standard errors (the variance is finite for d > 4, so the CLT applies)
        assert abs(r["monte_carlo"] - r["closed_form"]) < 5 * r["std_err"]
    # the loss scales as alpha^-2
    assert rows[0]["monte_carlo"] / rows[2]["monte_carlo"] == pytest.approx(64.0)


def test_prop1_monte_carlo_would_catch_a_wrong_formula():
    r = proposition1.monte_carlo(10, [1.0], n=200_000, seed=2)[0]
    assert abs(r["monte_carlo"] - 1 / 10) / (1 / 10) > 0.1  # 1/d is not the loss, 1/(d-2) is


def test_density_inversion_reverses_the_ranking():
    inv = proposition1.density_inversion(5, 2.0, n=5000, seed=0)
    assert inv["spearman_score"] == pytest.approx(-1.0)
    assert inv["spearman_density"] == pytest.approx(1.0)
    assert inv["auroc_tail"] == pytest.approx(0.0)
