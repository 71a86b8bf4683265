"""Geometry on molecules: centroids, orientation grids and pair invariants."""

from molgen.geometry.centroid import centroid, remove_centroid

__all__ = ["centroid", "remove_centroid"]
