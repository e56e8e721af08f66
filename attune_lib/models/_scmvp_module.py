"""The scMVP ``nn.Module``: two-channel encoder, Gaussian-mixture prior, two-channel decoder, cycle term.

Generative model (per cell)::

    c ~ Cat(pi)                      (K components, pi = softmax(pi_logits))
    z | c ~ N(mu_c, diag(var_c))
    x_g | z ~ NB(l_x * rho_g(z, gamma), theta_g)           RNA counts, l_x = observed library
    y_p | z ~ ZIP(l_y * kappa_p(z, gamma), sigmoid(w_p))   ATAC TF-IDF values, l_y = observed total

Inference: ``q(z | x, y)`` from the joint encoder, ``q(c | x) = p(c | z)`` (VaDE responsibilities).
Loss (per cell, averaged over the mini-batch)::

    -ELBO = -log NB(x) - log ZIP(y) + KL_VaDE(q(z,c|x,y) || p(z,c))
    cycle = KL(gamma(raw) || gamma(imputed)) + ||E[z | raw] - E[z | imputed]||^2

where the imputed profiles are ``log1p`` of the decoded means, re-embedded by the same encoder.
The pretraining phases ``"rna"`` and ``"atac"`` train one channel as a plain VAE with a
standard-normal prior on that channel's own posterior heads; ``"warmup"`` trains the joint encoder
and both decoders with a standard-normal prior, after which the mixture prior is fitted (VaDE).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from ._scmvp_distributions import (
    gmm_log_joint,
    kl_gmm_vade,
    kl_normal_standard,
    log_nb_positive,
    log_zip_positive_rowsum,
)
from ._scmvp_nn import (
    ClusterAttention,
    JointEncoder,
    MaskAttentionEncoder,
    NBDecoder,
    SelfAttentionEncoder,
    ZIPDecoder,
)

__all__ = ["PHASES", "ScMVPModule"]


@contextlib.contextmanager
def _frozen_batchnorm_stats(module: nn.Module):
    """Temporarily stop BatchNorm layers from updating their running statistics (momentum 0)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    try:
        for m in bns:
            m.momentum = 0.0
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom

PHASES = ("rna", "atac", "warmup", "joint")


class ScMVPModule(nn.Module):
    """scMVP multi-view VAE.

    Parameters
    ----------
    n_genes, n_peaks
        Input sizes of the RNA and ATAC channels.
    n_latent
        Dimension of the common latent ``z``.
    n_hidden
        Hidden size of every channel (128; the joint layer maps ``2 * n_hidden -> n_hidden``).
    n_components
        Number of Gaussian-mixture components ``K``.
    n_heads
        Self-attention heads of the ATAC encoder (``n_hidden // n_heads`` units per head).
    dropout_rate
        Dropout in the encoder blocks.
    cycle_weight
        Weight of the cycle-consistency term in the joint phase (0 disables the re-embedding pass).
    """

    def __init__(
        self,
        n_genes: int,
        n_peaks: int,
        *,
        n_latent: int = 10,
        n_hidden: int = 128,
        n_components: int = 20,
        n_heads: int = 8,
        dropout_rate: float = 0.1,
        cycle_weight: float = 1.0,
    ):
        super().__init__()
        self.n_genes = n_genes
        self.n_peaks = n_peaks
        self.n_latent = n_latent
        self.n_hidden = n_hidden
        self.n_components = n_components
        self.cycle_weight = cycle_weight

        self.rna_encoder = MaskAttentionEncoder(n_genes, n_hidden, n_latent, dropout_rate=dropout_rate)
        self.atac_encoder = SelfAttentionEncoder(
            n_peaks, n_hidden, n_latent, n_heads=n_heads, dropout_rate=dropout_rate
        )
        self.joint_encoder = JointEncoder(n_hidden, n_latent)
        self.cluster_attention = ClusterAttention(n_components, n_hidden)
        self.rna_decoder = NBDecoder(n_latent, n_hidden, n_genes)
        self.atac_decoder = ZIPDecoder(n_latent, n_hidden, n_peaks)

        # Gaussian-mixture prior (VaDE): softmax weights, means, log-variances
        self.pi_logits = nn.Parameter(torch.zeros(n_components))
        self.mu_c = nn.Parameter(torch.randn(n_components, n_latent) * 0.1)
        self.log_var_c = nn.Parameter(torch.zeros(n_components, n_latent))
        # 1 once the prior has been initialised from a Gaussian mixture (saved with the state dict)
        self.register_buffer("gmm_initialised", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ prior
    def prior_params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(log_pi, mu_c, var_c)`` of the mixture prior."""
        return torch.log_softmax(self.pi_logits, dim=-1), self.mu_c, torch.exp(self.log_var_c)

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """Cluster posterior ``p(c | z)``, shape ``(n, K)``."""
        log_pi, mu_c, var_c = self.prior_params()
        return torch.softmax(gmm_log_joint(z, log_pi, mu_c, var_c), dim=-1)

    @torch.no_grad()
    def init_prior_from_gmm(self, latent: np.ndarray, *, seed: int = 0) -> np.ndarray:
        """Fit a diagonal :class:`~sklearn.mixture.GaussianMixture` on ``latent`` and copy it into the prior.

        Returns the hard GMM labels of ``latent``.
        """
        from sklearn.mixture import GaussianMixture

        latent = np.asarray(latent, dtype=np.float64)
        if latent.shape[0] < self.n_components:
            raise ValueError(
                f"n_components={self.n_components} exceeds the number of cells ({latent.shape[0]})"
            )
        gmm = GaussianMixture(
            n_components=self.n_components, covariance_type="diag", random_state=seed, reg_covar=1e-4
        )
        labels = gmm.fit_predict(latent)
        dev = self.mu_c.device
        self.pi_logits.copy_(
            torch.as_tensor(np.log(np.clip(gmm.weights_, 1e-8, None)), dtype=torch.float32, device=dev)
        )
        self.mu_c.copy_(torch.as_tensor(gmm.means_, dtype=torch.float32, device=dev))
        self.log_var_c.copy_(torch.as_tensor(np.log(gmm.covariances_), dtype=torch.float32, device=dev))
        self.gmm_initialised.fill_(1)
        return labels

    # --------------------------------------------------------------- networks
    def encode(self, x_rna: torch.Tensor, y_atac: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode raw RNA counts and ATAC TF-IDF values (``log1p`` is applied here)."""
        r_m, r_v, r_z, r_h = self.rna_encoder(torch.log1p(x_rna))
        a_m, a_v, a_z, a_h = self.atac_encoder(torch.log1p(y_atac))
        qz_m, qz_v, z = self.joint_encoder(r_h, a_h)
        return {
            "qz_m": qz_m, "qz_v": qz_v, "z": z,
            "qz_rna_m": r_m, "qz_rna_v": r_v, "z_rna": r_z,
            "qz_atac_m": a_m, "qz_atac_v": a_v, "z_atac": a_z,
        }

    def decode(
        self,
        z: torch.Tensor,
        lib_rna: torch.Tensor,
        lib_atac: torch.Tensor,
        gamma: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Decoder outputs; ``gamma`` (``q(c|z)``) drives the cluster attention when given."""
        attention = self.cluster_attention(gamma) if gamma is not None else None
        rna_mu, theta = self.rna_decoder(z, lib_rna, attention)
        atac_mu, zi_logits = self.atac_decoder(z, lib_atac, attention)
        return {"rna_mu": rna_mu, "theta": theta, "atac_mu": atac_mu, "zi_logits": zi_logits}

    @staticmethod
    def libraries(x_rna: torch.Tensor, y_atac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Observed library sizes ``(n, 1)`` (floored at 1e-8 so empty cells stay finite)."""
        return (
            torch.clamp(x_rna.sum(-1, keepdim=True), min=1e-8),
            torch.clamp(y_atac.sum(-1, keepdim=True), min=1e-8),
        )

    # ------------------------------------------------------------------- loss
    def loss(self, x_rna: torch.Tensor, y_atac: torch.Tensor, *, phase: str = "joint") -> dict[str, torch.Tensor]:
        """Mini-batch loss of one training phase.

        Parameters
        ----------
        x_rna
            RNA counts, ``(n, n_genes)``.
        y_atac
            ATAC TF-IDF values, ``(n, n_peaks)``.
        phase
            ``"rna"`` / ``"atac"`` (single-channel VAE, standard-normal prior), ``"warmup"`` (joint
            encoder and both decoders, standard-normal prior) or ``"joint"`` (mixture prior, cluster
            attention and cycle term).

        Returns
        -------
        Dict with the scalar ``loss`` to minimise and its batch-averaged parts
        ``reconst_rna``, ``reconst_atac``, ``kl``, ``cycle``.
        """
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        zero = x_rna.new_zeros(())
        lib_rna, lib_atac = self.libraries(x_rna, y_atac)
        if phase == "rna":
            q_m, q_v, z, _ = self.rna_encoder(torch.log1p(x_rna))
            mu, theta = self.rna_decoder(z, lib_rna)
            rec = -log_nb_positive(x_rna, mu, theta).sum(-1).mean()
            kl = kl_normal_standard(q_m, q_v).mean()
            return {"loss": rec + kl, "reconst_rna": rec, "reconst_atac": zero, "kl": kl, "cycle": zero}
        if phase == "atac":
            q_m, q_v, z, _ = self.atac_encoder(torch.log1p(y_atac))
            mu, zi = self.atac_decoder(z, lib_atac)
            rec = -log_zip_positive_rowsum(y_atac, mu, zi).mean()
            kl = kl_normal_standard(q_m, q_v).mean()
            return {"loss": rec + kl, "reconst_rna": zero, "reconst_atac": rec, "kl": kl, "cycle": zero}

        enc = self.encode(x_rna, y_atac)
        if phase == "warmup":
            # joint warm-up: standard-normal prior, no cluster attention, no cycle term
            dec = self.decode(enc["z"], lib_rna, lib_atac, None)
            rec_rna = -log_nb_positive(x_rna, dec["rna_mu"], dec["theta"]).sum(-1).mean()
            rec_atac = -log_zip_positive_rowsum(y_atac, dec["atac_mu"], dec["zi_logits"]).mean()
            kl = kl_normal_standard(enc["qz_m"], enc["qz_v"]).mean()
            return {
                "loss": rec_rna + rec_atac + kl,
                "reconst_rna": rec_rna,
                "reconst_atac": rec_atac,
                "kl": kl,
                "cycle": zero,
            }
        log_pi, mu_c, var_c = self.prior_params()
        gamma = torch.softmax(gmm_log_joint(enc["z"], log_pi, mu_c, var_c), dim=-1)
        dec = self.decode(enc["z"], lib_rna, lib_atac, gamma)
        rec_rna = -log_nb_positive(x_rna, dec["rna_mu"], dec["theta"]).sum(-1).mean()
        rec_atac = -log_zip_positive_rowsum(y_atac, dec["atac_mu"], dec["zi_logits"]).mean()
        kl = kl_gmm_vade(enc["qz_m"], enc["qz_v"], gamma, log_pi, mu_c, var_c).mean()
        loss = rec_rna + rec_atac + kl
        cycle = zero
        if self.cycle_weight > 0:
            cycle = self.cycle_loss(enc["qz_m"], dec["rna_mu"], dec["atac_mu"]).mean()
            loss = loss + self.cycle_weight * cycle
        return {"loss": loss, "reconst_rna": rec_rna, "reconst_atac": rec_atac, "kl": kl, "cycle": cycle}

    def cycle_loss(self, qz_m: torch.Tensor, rna_mu: torch.Tensor, atac_mu: torch.Tensor) -> torch.Tensor:
        """Cycle-consistency per cell: re-embed the imputed profiles and match the raw embedding.

        ``KL(gamma_raw || gamma_imputed) + ||qz_m - qz_m_imputed||^2``, with the raw side (the target)
        detached, responsibilities taken at the posterior means. The re-embedding pass normalises with
        batch statistics but leaves the BatchNorm running statistics (used at inference) untouched.
        """
        with _frozen_batchnorm_stats(self):
            _, _, _, h_rna = self.rna_encoder(torch.log1p(rna_mu))
            _, _, _, h_atac = self.atac_encoder(torch.log1p(atac_mu))
            rec_m, _, _ = self.joint_encoder(h_rna, h_atac)
        log_pi, mu_c, var_c = self.prior_params()
        log_g_raw = torch.log_softmax(gmm_log_joint(qz_m, log_pi, mu_c, var_c), dim=-1).detach()
        log_g_rec = torch.log_softmax(gmm_log_joint(rec_m, log_pi, mu_c, var_c), dim=-1)
        kl_c = (torch.exp(log_g_raw) * (log_g_raw - log_g_rec)).sum(-1)
        mse = ((rec_m - qz_m.detach()) ** 2).sum(-1)
        return kl_c + mse

    # -------------------------------------------------------------- inference
    @torch.no_grad()
    def posterior(self, x_rna: torch.Tensor, y_atac: torch.Tensor) -> dict[str, torch.Tensor]:
        """Deterministic outputs (call in eval mode): latent mean, responsibilities and imputations."""
        lib_rna, lib_atac = self.libraries(x_rna, y_atac)
        enc = self.encode(x_rna, y_atac)
        gamma = self.responsibilities(enc["qz_m"]) if int(self.gmm_initialised) else None
        dec = self.decode(enc["qz_m"], lib_rna, lib_atac, gamma)
        out = {"latent": enc["qz_m"], "rna_imputed": dec["rna_mu"], "atac_imputed": dec["atac_mu"]}
        if gamma is not None:
            out["gamma"] = gamma
        return out
