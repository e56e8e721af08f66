"""Layers of the scMVP multi-view VAE (PyTorch, scvi-tools style).

Building blocks, following the scMVP design notes (``docs/scmvp.md`` lists every choice):

* :class:`FCBlock` - ``Dropout(ReLU(BatchNorm(LayerNorm(Linear(x)))))``, the scMVP building block
  (BatchNorm momentum 0.01).
* :class:`GaussianHeads` - mean and variance heads, ``var = exp(clamp(log_var, -5, 5)) + 1e-4``, with a
  reparameterised sample.
* :class:`MaskAttentionEncoder` - RNA channel: the first 128-d hidden layer ``h = Linear(x)`` feeds both
  ``ReLU(BatchNorm(LayerNorm(h)))`` and a sigmoid mask ``Sigmoid(Linear(h))`` that multiplies it.
* :class:`HiddenSelfAttention` / :class:`SelfAttentionEncoder` - ATAC channel: ``ReLU(BatchNorm(Linear(x)))``
  followed by multi-head self-attention over the units of the hidden vector (8 heads x 16 units; each
  hidden unit of a head is a scalar token), a residual connection and a LayerNorm.
* :class:`JointEncoder` - concatenated channels -> ``Linear(256 -> 128)`` -> ``LayerNorm`` -> heads.
* :class:`ClusterAttention` - maps the cluster posterior ``q(c | z)`` through ``Linear(K -> 128)`` and a
  softmax to weights on the last hidden layer of each decoder channel.
* :class:`NBDecoder`, :class:`ZIPDecoder` - decoder channels (negative binomial for RNA, zero-inflated
  Poisson for ATAC) with observed library sizes.

Everything is out-of-place so ``torch.autograd.set_detect_anomaly(True)`` runs clean.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "ClusterAttention",
    "FCBlock",
    "GaussianHeads",
    "HiddenSelfAttention",
    "JointEncoder",
    "MaskAttentionEncoder",
    "NBDecoder",
    "SelfAttentionEncoder",
    "ZIPDecoder",
]

BN_MOMENTUM = 0.01
LOG_VAR_CLAMP = 5.0
VAR_EPS = 1e-4


class FCBlock(nn.Module):
    """``Dropout(ReLU(BatchNorm(LayerNorm(Linear(x)))))``.

    Parameters
    ----------
    n_in, n_out
        Input and output sizes.
    dropout_rate
        Dropout after the activation (0 disables it).
    """

    def __init__(self, n_in: int, n_out: int, *, dropout_rate: float = 0.1):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.layer_norm = nn.LayerNorm(n_out)
        self.batch_norm = nn.BatchNorm1d(n_out, momentum=BN_MOMENTUM)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.act(self.batch_norm(self.layer_norm(self.linear(x)))))


class GaussianHeads(nn.Module):
    """Mean and variance heads of a diagonal Gaussian posterior with a reparameterised sample.

    ``mean = Linear(h)``, ``var = exp(clamp(Linear(h), -5, 5)) + 1e-4``, ``z = mean + sqrt(var) * eps``.
    """

    def __init__(self, n_in: int, n_latent: int):
        super().__init__()
        self.mean = nn.Linear(n_in, n_latent)
        self.log_var = nn.Linear(n_in, n_latent)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q_m = self.mean(h)
        q_v = torch.exp(torch.clamp(self.log_var(h), -LOG_VAR_CLAMP, LOG_VAR_CLAMP)) + VAR_EPS
        z = q_m + torch.sqrt(q_v) * torch.randn_like(q_m)
        return q_m, q_v, z


class MaskAttentionEncoder(nn.Module):
    """RNA branch: ``ReLU(BatchNorm(LayerNorm(h))) * Sigmoid(Linear(h))`` with ``h = Linear(x)``.

    The mask (gate) is generated from the first 128-d hidden layer, so ``Sigmoid(Linear(Linear(x)))``
    of the design notes shares its inner ``Linear`` with the encoder body.

    Parameters
    ----------
    n_input
        Number of genes (the input is ``log1p`` counts).
    n_hidden
        Hidden size (128).
    n_latent
        Latent size of this channel's own posterior heads (used for pretraining and the cycle term).
    dropout_rate
        Dropout after the activation.
    """

    def __init__(self, n_input: int, n_hidden: int, n_latent: int, *, dropout_rate: float = 0.1):
        super().__init__()
        self.linear = nn.Linear(n_input, n_hidden)
        self.layer_norm = nn.LayerNorm(n_hidden)
        self.batch_norm = nn.BatchNorm1d(n_hidden, momentum=BN_MOMENTUM)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.mask = nn.Sequential(nn.Linear(n_hidden, n_hidden), nn.Sigmoid())
        self.heads = GaussianHeads(n_hidden, n_latent)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d masked hidden representation (input of the joint encoder)."""
        h = self.linear(x)
        body = self.dropout(self.act(self.batch_norm(self.layer_norm(h))))
        return body * self.mask(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(q_m, q_v, z, hidden)``."""
        h = self.hidden(x)
        q_m, q_v, z = self.heads(h)
        return q_m, q_v, z, h


class HiddenSelfAttention(nn.Module):
    """Multi-head self-attention across the units of one hidden vector (not across peaks).

    The ``n_hidden`` vector is split into ``n_heads`` groups of ``n_hidden // n_heads`` units; inside a
    head each unit is a scalar token with query ``q_i``, key ``k_i`` and value ``v_i`` (rows of
    ``Linear(h)``), attention ``softmax_j(q_i k_j)`` and output ``sum_j a_ij v_j``.
    """

    def __init__(self, n_hidden: int, n_heads: int = 8, *, attention_dropout: float = 0.01):
        super().__init__()
        if n_hidden % n_heads:
            raise ValueError(f"n_hidden={n_hidden} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.w_q = nn.Linear(n_hidden, n_hidden)
        self.w_k = nn.Linear(n_hidden, n_hidden)
        self.w_v = nn.Linear(n_hidden, n_hidden)
        self.dropout = nn.Dropout(attention_dropout) if attention_dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor, *, return_attention: bool = False):
        n, d = h.shape
        shape = (n, self.n_heads, d // self.n_heads, 1)
        q = self.w_q(h).reshape(shape)
        k = self.w_k(h).reshape(shape)
        v = self.w_v(h).reshape(shape)
        energy = torch.matmul(q, k.transpose(-1, -2))  # (n, heads, units, units); d_k = 1 so no scaling
        attn = torch.softmax(energy, dim=-1)
        out = torch.matmul(self.dropout(attn), v).reshape(n, d)
        return (out, attn) if return_attention else out


class SelfAttentionEncoder(nn.Module):
    """ATAC branch: ``LayerNorm(h + SelfAttention(h))`` with ``h = ReLU(BatchNorm(Linear(x)))``.

    Parameters
    ----------
    n_input
        Number of peaks (input: ``log1p`` of TF-IDF values, densified per mini-batch).
    n_hidden, n_heads
        Hidden size (128) and number of heads (8, so 16 units per head).
    n_latent
        Latent size of this channel's own posterior heads.
    dropout_rate
        Dropout after the activation.
    """

    def __init__(self, n_input: int, n_hidden: int, n_latent: int, *, n_heads: int = 8, dropout_rate: float = 0.1):
        super().__init__()
        self.linear = nn.Linear(n_input, n_hidden)
        self.batch_norm = nn.BatchNorm1d(n_hidden, momentum=BN_MOMENTUM)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.attention = HiddenSelfAttention(n_hidden, n_heads)
        self.layer_norm = nn.LayerNorm(n_hidden)
        self.heads = GaussianHeads(n_hidden, n_latent)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.batch_norm(self.linear(x))))
        return self.layer_norm(h + self.attention(h))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(q_m, q_v, z, hidden)``."""
        h = self.hidden(x)
        q_m, q_v, z = self.heads(h)
        return q_m, q_v, z, h


class JointEncoder(nn.Module):
    """Common latent: ``heads(LayerNorm(Linear(concat(h_rna, h_atac))))`` (``Linear(256 -> 128)``)."""

    def __init__(self, n_hidden: int, n_latent: int):
        super().__init__()
        self.linear = nn.Linear(2 * n_hidden, n_hidden)
        self.layer_norm = nn.LayerNorm(n_hidden)
        self.heads = GaussianHeads(n_hidden, n_latent)

    def forward(self, h_rna: torch.Tensor, h_atac: torch.Tensor):
        return self.heads(self.layer_norm(self.linear(torch.cat([h_rna, h_atac], dim=-1))))


class ClusterAttention(nn.Module):
    """Cluster attention: ``weights = n_hidden * softmax(Linear(q(c|z)))`` over the hidden units.

    The factor ``n_hidden`` makes uniform attention the identity; the linear layer is zero-initialised,
    so the attention starts as the identity when the Gaussian-mixture prior is switched on.
    """

    def __init__(self, n_components: int, n_hidden: int):
        super().__init__()
        self.n_hidden = n_hidden
        self.linear = nn.Linear(n_components, n_hidden)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, gamma: torch.Tensor) -> torch.Tensor:
        return self.n_hidden * torch.softmax(self.linear(gamma), dim=-1)


class NBDecoder(nn.Module):
    """RNA decoder channel: NB mean ``library * softmax(Linear(h * attention))``, per-gene dispersion."""

    def __init__(self, n_latent: int, n_hidden: int, n_output: int):
        super().__init__()
        self.body = FCBlock(n_latent, n_hidden, dropout_rate=0.0)
        self.scale = nn.Linear(n_hidden, n_output)
        self.log_theta = nn.Parameter(torch.zeros(n_output))

    def forward(self, z: torch.Tensor, library: torch.Tensor, attention: torch.Tensor | None = None):
        """Return ``(mu, theta)``; ``library`` has shape ``(n, 1)``."""
        h = self.body(z)
        if attention is not None:
            h = h * attention
        mu = library * torch.softmax(self.scale(h), dim=-1)
        theta = torch.exp(self.log_theta)
        return mu, theta


class ZIPDecoder(nn.Module):
    """ATAC decoder channel: Poisson mean ``library * softmax(Linear(h'))`` and zero-inflation logits."""

    def __init__(self, n_latent: int, n_hidden: int, n_output: int):
        super().__init__()
        self.body = FCBlock(n_latent, n_hidden, dropout_rate=0.0)
        self.scale = nn.Linear(n_hidden, n_output)
        self.zi_logits = nn.Linear(n_hidden, n_output)

    def forward(self, z: torch.Tensor, library: torch.Tensor, attention: torch.Tensor | None = None):
        """Return ``(mu, zi_logits)``; ``library`` has shape ``(n, 1)``."""
        h = self.body(z)
        if attention is not None:
            h = h * attention
        mu = library * torch.softmax(self.scale(h), dim=-1)
        return mu, self.zi_logits(h)
