"""The binomial active-count law against scipy.stats (an independent implementation)."""

import numpy as np
import pytest
import scipy.stats

from jaxspec import theory


@pytest.mark.parametrize(("n", "p"), [(1, 0.5), (4, 0.5), (16, 0.0), (16, 1.0), (1000, 0.3), (5000, 0.999)])
def test_binomial_count_law_matches_scipy_stats(n, p):
    law = theory.binomial_count_law(n, n, p)
    oracle = scipy.stats.binom.pmf(np.arange(n + 1), n, p)
    np.testing.assert_allclose(law.pmf, oracle, rtol=1e-9, atol=1e-15)
    assert law.pmf.sum() == pytest.approx(1.0, abs=1e-11)
