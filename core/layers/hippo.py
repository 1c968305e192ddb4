"""HiPPO-LegS matrices and their diagonal-plus-low-rank (DPLR) form (S4 / S5 initialisation).

Following the S5 reference (``lindermanlab/S5`` ``ssm_init.py``), in float64:
- ``make_hippo(N)``: A_nk = -sqrt(2n+1) sqrt(2k+1) for n > k, -(n+1) on the diagonal, 0 above.
- ``make_nplr_hippo(N)``: A, P = sqrt(n + 1/2), B = sqrt(2n + 1) with A + P Pᵀ normal.
- ``make_dplr_hippo(N)``: S = A + P Pᵀ = -1/2 I + (skew part); its eigenvalues are
  Λ = mean(diag S) + i·eig(-i S) with eigenvectors V (unitary, from ``eigh`` of the Hermitian
  matrix -i S). Returns Λ (N,), P and B in the eigenbasis (Vᴴ P, Vᴴ B), V and the original B.
The eigenvalues come in conjugate pairs; S5 keeps one of each pair (``conj_sym``).
"""
from __future__ import annotations

import torch


def make_hippo(N: int) -> torch.Tensor:
    p = torch.sqrt(1 + 2 * torch.arange(N, dtype=torch.float64))  # (N,)
    A = p[:, None] * p[None, :]  # (N, N)
    A = torch.tril(A) - torch.diag(torch.arange(N, dtype=torch.float64))
    return -A


def make_nplr_hippo(N: int):
    A = make_hippo(N)
    n = torch.arange(N, dtype=torch.float64)
    return A, torch.sqrt(n + 0.5), torch.sqrt(2 * n + 1.0)


def make_dplr_hippo(N: int):
    """Λ (N,) complex128, P_v (N,), B_v (N,) in the eigenbasis, V (N, N) complex128, B (N,) float64."""
    A, P, B = make_nplr_hippo(N)
    S = A + P[:, None] * P[None, :]  # (N, N), normal
    lam_re = torch.mean(torch.diagonal(S)) * torch.ones(N, dtype=torch.float64)  # all -1/2
    lam_im, V = torch.linalg.eigh(S.to(torch.complex128) * -1j)  # (N,), (N, N)
    Vh = V.conj().T
    return lam_re + 1j * lam_im, Vh @ P.to(torch.complex128), Vh @ B.to(torch.complex128), V, B
