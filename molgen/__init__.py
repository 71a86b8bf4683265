"""molgen: 3D molecule generation with E(3) equivariant diffusion."""

from molgen.threads import set_openmp_policy

set_openmp_policy()  # before anything imports torch: OpenMP reads its wait policy once, at load

__version__ = "0.1.0"
