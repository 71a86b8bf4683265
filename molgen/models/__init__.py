"""Denoisers with the call `(z_x [M, 3], z_h [M, 6], t [B], layout) -> (eps_x [M, 3], eps_h [M, 6])`."""
