"""The QM9 elements, in EDM's order (the atom-type index used everywhere in molgen)."""

ELEMENTS: tuple[str, ...] = ("H", "C", "N", "O", "F")
ATOMIC_NUMBERS: tuple[int, ...] = (1, 6, 7, 8, 9)
TYPE_INDEX: dict[str, int] = {symbol: i for i, symbol in enumerate(ELEMENTS)}
NUM_FEATURES: int = len(ELEMENTS) + 1  # the per-atom features h of the diffusion state: one-hot (5) and charge (1)
NORM_VALUES: tuple[float, float, float] = (1.0, 4.0, 10.0)  # x / 1, one-hot / 4, charge / 10 (EDM's QM9 setting)
