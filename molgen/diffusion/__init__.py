"""EDM (Hoogeboom et al. 2022): the noise schedule, forward process and training loss, the VLB / NLL, and samplers.

The diffusion takes a denoiser as an argument and never imports a model class: any callable
`denoiser(z_x [M, 3], z_h [M, 6], t [B] in [0, 1], layout) -> (eps_x [M, 3], eps_h [M, 6])`.
"""

from molgen.diffusion.errors import LikelihoodError, SamplingError
from molgen.diffusion.likelihood import NLLEstimate, NLLTerms, evaluate_nll, kl_prior, variational_nll
from molgen.diffusion.nodes import NodeCountDistribution
from molgen.diffusion.process import (
    NORM_VALUES,
    NUM_TYPES,
    STATE_DIM,
    Denoiser,
    DiffusionLoss,
    batch_to_state,
    diffusion_loss,
    noise_state,
    sample_noise,
    state_to_batch,
)
from molgen.diffusion.dpmpp2m import logsnr_grid, sample_dpmpp2m
from molgen.diffusion.heun import karras_grid, karras_sigmas, sample_heun, snap_to_table
from molgen.diffusion.samplers import ancestral_grid, atom_counts, sample, sample_ancestral, strided_grid
from molgen.diffusion.schedule import NoiseSchedule, PolynomialSchedule, polynomial_2_gamma, to_ve, to_vp
from molgen.diffusion.steps import (
    EpsModel,
    EpsModifier,
    SamplerState,
    StepHook,
    StepInfo,
    chain_hooks,
    final_step,
    initial_state,
)

__all__ = [
    "EpsModel", "EpsModifier", "StepHook", "atom_counts", "chain_hooks", "karras_grid", "logsnr_grid",
    "sample_dpmpp2m", "strided_grid", "to_ve", "to_vp",
    "NORM_VALUES", "NUM_TYPES", "STATE_DIM", "Denoiser", "DiffusionLoss", "LikelihoodError",
    "NLLEstimate", "NLLTerms", "NodeCountDistribution", "NoiseSchedule", "PolynomialSchedule", "SamplerState",
    "SamplingError", "StepInfo", "ancestral_grid", "batch_to_state", "diffusion_loss", "evaluate_nll",
    "final_step", "initial_state", "karras_sigmas", "kl_prior", "noise_state", "polynomial_2_gamma", "sample",
    "sample_ancestral", "sample_heun", "sample_noise", "snap_to_table", "state_to_batch", "variational_nll",
]
