"""Log-likelihoods and KL terms used by scMVP.

* :func:`log_nb_positive` - negative binomial in the (mean ``mu``, inverse dispersion ``theta``)
  parameterisation used by scVI/scMVP. It equals ``scipy.stats.nbinom(n=theta, p=theta / (theta + mu))``.
* :func:`log_zip_positive` - zero-inflated Poisson,
  ``p(x) = pi * 1[x = 0] + (1 - pi) * Poisson(x; mu)``, with ``pi = sigmoid(zi_logits)``.
  For non-integer ``x`` (TF-IDF values) the Poisson term is the usual continuous relaxation
  ``x log mu - mu - lgamma(x + 1)`` (a Poisson quasi-likelihood: its gradient in ``mu`` is the
  same as for integer data, so ``mu`` still estimates ``E[x]``).
* :func:`kl_gmm_vade` - ``KL(q(z, c | x) || p(z, c))`` for a diagonal-Gaussian posterior and a
  Gaussian-mixture prior with the cluster posterior ``q(c | x)`` set to the responsibilities
  (VaDE, Jiang et al. 2017).
* :func:`kl_normal_standard` - ``KL(N(mu, var) || N(0, I))`` for the single-modality pretraining.

All functions are out-of-place (safe under ``torch.autograd.set_detect_anomaly``) and return one
value per element / per cell without reducing over the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "gmm_log_joint",
    "kl_gmm_vade",
    "kl_normal_standard",
    "log_nb_positive",
    "log_normal_diag",
    "log_zip_positive",
    "log_zip_positive_rowsum",
]

_LOG_2PI = math.log(2.0 * math.pi)


def log_nb_positive(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Element-wise log-pmf of the negative binomial NB(mean ``mu``, inverse dispersion ``theta``).

    ``log p(x) = lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)
    + theta * log(theta / (theta + mu)) + x * log(mu / (theta + mu))``.

    Parameters
    ----------
    x
        Observed counts (non-negative), shape ``(n, g)``.
    mu
        Means (positive), broadcastable to ``x``.
    theta
        Inverse dispersion (positive), broadcastable to ``x``; variance is ``mu + mu**2 / theta``.
    eps
        Numerical floor inside the logarithms.

    Returns
    -------
    Tensor of log-probabilities with the broadcast shape.
    """
    log_theta_mu = torch.log(theta + mu + eps)
    return (
        theta * (torch.log(theta + eps) - log_theta_mu)
        + x * (torch.log(mu + eps) - log_theta_mu)
        + torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1.0)
    )


def log_zip_positive(x: torch.Tensor, mu: torch.Tensor, zi_logits: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Element-wise log-density of the zero-inflated Poisson ``pi * 1[x=0] + (1 - pi) * Poisson(mu)``.

    Parameters
    ----------
    x
        Observed values (non-negative; non-integers use the continuous Poisson relaxation).
    mu
        Poisson means (positive), broadcastable to ``x``.
    zi_logits
        Logits of the zero-inflation probability, ``pi = sigmoid(zi_logits)``.
    eps
        Numerical floor inside ``log(mu)``.

    Returns
    -------
    Tensor of log-probabilities with the broadcast shape.
    """
    softplus_l = F.softplus(zi_logits)  # -log(1 - pi)
    # log(pi + (1 - pi) e^{-mu}) = log(e^l + e^{-mu}) - log(1 + e^l), stable for any l and mu
    at_zero = torch.logaddexp(zi_logits, -mu) - softplus_l
    non_zero = -softplus_l + x * torch.log(mu + eps) - mu - torch.lgamma(x + 1.0)
    return torch.where(x > 0, non_zero, at_zero)


def log_zip_positive_rowsum(
    x: torch.Tensor, mu: torch.Tensor, zi_logits: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Row sums of :func:`log_zip_positive` for sparse ``x``, touching the non-zeros only where needed.

    ``sum_p log p(x_p) = sum_p z_p``
    ``+ sum_{p: x_p > 0} (x_p log mu_p - mu_p - lgamma(x_p + 1) - log(e^{l_p} + e^{-mu_p}))``
    with the zero term ``z_p = log(e^{l_p} + e^{-mu_p}) - softplus(l_p)``. The same value as
    ``log_zip_positive(x, mu, zi_logits).sum(-1)`` at a fraction of the cost when ``x`` is sparse
    (ATAC is ~3% non-zero).

    Parameters
    ----------
    x, mu, zi_logits
        ``(n, p)`` tensors as in :func:`log_zip_positive`.
    eps
        Numerical floor inside ``log(mu)``.

    Returns
    -------
    ``(n,)`` tensor.
    """
    total = (torch.logaddexp(zi_logits, -mu) - F.softplus(zi_logits)).sum(-1)
    rows, cols = torch.nonzero(x > 0, as_tuple=True)
    if rows.numel() == 0:
        return total
    xv, mv, lv = x[rows, cols], mu[rows, cols], zi_logits[rows, cols]
    corr = xv * torch.log(mv + eps) - mv - torch.lgamma(xv + 1.0) - torch.logaddexp(lv, -mv)
    return torch.index_add(total, 0, rows, corr)


def log_normal_diag(z: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Log-density of a diagonal Gaussian, summed over the last dimension."""
    return -0.5 * (_LOG_2PI + torch.log(var) + (z - mean) ** 2 / var).sum(-1)


def gmm_log_joint(z: torch.Tensor, log_pi: torch.Tensor, mu_c: torch.Tensor, var_c: torch.Tensor) -> torch.Tensor:
    """``log p(c) + log p(z | c)`` for every cell and component.

    Parameters
    ----------
    z
        Latent points, ``(n, d)``.
    log_pi
        Log mixture weights, ``(K,)``.
    mu_c, var_c
        Component means and variances, ``(K, d)``.

    Returns
    -------
    ``(n, K)`` tensor; ``softmax`` over the last axis gives the responsibilities ``p(c | z)``.
    """
    diff = z.unsqueeze(1) - mu_c.unsqueeze(0)  # (n, K, d)
    log_pz_c = -0.5 * (_LOG_2PI + torch.log(var_c).unsqueeze(0) + diff**2 / var_c.unsqueeze(0)).sum(-1)
    return log_pi.unsqueeze(0) + log_pz_c


def kl_gmm_vade(
    qz_m: torch.Tensor,
    qz_v: torch.Tensor,
    gamma: torch.Tensor,
    log_pi: torch.Tensor,
    mu_c: torch.Tensor,
    var_c: torch.Tensor,
    eps: float = 1e-10,
) -> torch.Tensor:
    """VaDE ``KL(q(z|x) q(c|x) || p(z|c) p(c))`` per cell (closed form in ``z``).

    ``KL = sum_c gamma_c [ 0.5 sum_d (log 2 pi var_cd + (v_d + (m_d - mu_cd)^2) / var_cd) ]
    - sum_c gamma_c log pi_c + sum_c gamma_c log gamma_c - 0.5 sum_d (1 + log 2 pi v_d)``

    Parameters
    ----------
    qz_m, qz_v
        Posterior mean and variance, ``(n, d)``.
    gamma
        Cluster posterior ``q(c | x)`` (responsibilities), ``(n, K)``, rows summing to one.
    log_pi, mu_c, var_c
        Prior log weights ``(K,)``, means and variances ``(K, d)``.

    Returns
    -------
    ``(n,)`` tensor of KL divergences (zero when ``K = 1`` and the component equals the posterior).
    """
    m = qz_m.unsqueeze(1)
    v = qz_v.unsqueeze(1)
    cross = 0.5 * (
        _LOG_2PI + torch.log(var_c).unsqueeze(0) + (v + (m - mu_c.unsqueeze(0)) ** 2) / var_c.unsqueeze(0)
    ).sum(-1)
    e_log_pz_c = (gamma * cross).sum(-1)  # = -E[log p(z|c)]
    e_log_pc = (gamma * log_pi.unsqueeze(0)).sum(-1)
    e_log_qc = (gamma * torch.log(gamma + eps)).sum(-1)
    entropy_z = 0.5 * (1.0 + _LOG_2PI + torch.log(qz_v)).sum(-1)
    return e_log_pz_c - e_log_pc + e_log_qc - entropy_z


def kl_normal_standard(qz_m: torch.Tensor, qz_v: torch.Tensor) -> torch.Tensor:
    """``KL(N(qz_m, qz_v) || N(0, I))`` summed over the latent dimension, per cell."""
    return 0.5 * (qz_v + qz_m**2 - 1.0 - torch.log(qz_v)).sum(-1)
