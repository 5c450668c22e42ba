"""How a training job estimates its validation error: one validation split, or k-fold cross-validation.

On small tables a validation split of a few hundred rows (or fewer) makes the tuner and the choice
between candidates chase noise; there, every training job uses the same k folds over the train and
validation rows together, so the errors the candidates report are comparable and far less noisy.
"""

import numpy as np
import pandas as pd

CROSS_VALIDATION_MAX_ROWS = 2000  # above it, the validation split holds some 350 rows or more
FOLDS = 5
FOLD_SEED = 0


def uses_cross_validation(row_count: int) -> bool:
    """Whether ``row_count`` train + validation rows (of all hosts) are few enough to cross-validate."""
    return row_count <= CROSS_VALIDATION_MAX_ROWS


def pooled_rows(train: pd.DataFrame, validation: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([train, validation], ignore_index=True)


def fold_indices(row_count: int, folds: int = FOLDS, seed: int = FOLD_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, held-out rows) per fold: one seeded permutation, the same in every job."""
    permutation = np.random.default_rng(seed).permutation(row_count)
    held_out = np.array_split(permutation, folds)
    return [(np.sort(np.concatenate([part for j, part in enumerate(held_out) if j != i])), np.sort(part))
            for i, part in enumerate(held_out)]
