"""Denoisers with the call `(z_x [M, 3], z_h [M, 6], t [B], layout) -> (eps_x [M, 3], eps_h [M, 6])`.

Importing the package imports every model module, and each registers its model (molgen.models.registry) in the
order below, which is the order error messages list the models in: PONITA, the default, first.
"""
# isort: skip_file

from molgen.models import ponita  # noqa: F401
from molgen.models import egnn  # noqa: F401
from molgen.property import regressor  # noqa: F401  (the property regressors: molgen.property)
