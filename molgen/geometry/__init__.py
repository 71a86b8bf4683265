"""Geometry on molecules: centroids, orientation grids on S^2 and PONITA's pair invariants."""

from molgen.geometry.centroid import centroid, remove_centroid
from molgen.geometry.invariants import orientation_invariants, pair_invariants
from molgen.geometry.orientations import fibonacci_grid, repulsion_grid

__all__ = ["centroid", "fibonacci_grid", "orientation_invariants", "pair_invariants", "remove_centroid", "repulsion_grid"]
