"""molgen: 3D molecule generation with E(3) equivariant diffusion."""

__version__ = "0.1.0"
