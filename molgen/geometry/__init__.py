"""Geometry on molecules: centroids, orientation grids on S^2, PONITA's pair invariants and random rotations."""

from molgen.geometry.centroid import centroid, remove_centroid
from molgen.geometry.invariants import orientation_invariants, pair_invariants
from molgen.geometry.orientations import fibonacci_grid, repulsion_grid
from molgen.geometry.rotations import quaternion_to_matrix, random_rotations

__all__ = [
    "centroid", "fibonacci_grid", "orientation_invariants", "pair_invariants", "quaternion_to_matrix",
    "random_rotations", "remove_centroid", "repulsion_grid",
]
