"""The names of the properties and of EDM's training halves, import-free (the model registry reads them)."""

PROPERTY_NAMES = ("alpha", "gap", "homo", "lumo", "mu", "Cv")  # EDM's conditioning properties
HALVES = ("first", "second")  # EDM's qm9_first_half (D_a) and qm9_second_half (D_b)
