"""Errors of the diffusion: a sampler or the likelihood met NaN or inf (nothing is silently zeroed)."""

from __future__ import annotations

from molgen.errors import MolgenError


class SamplingError(MolgenError):
    """Sampling produced a non-finite state or network output; the message names the step."""


class LikelihoodError(MolgenError):
    """The likelihood evaluation produced a non-finite network output or NLL term; the message says where."""
