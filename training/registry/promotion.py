"""Champion/challenger promotion on RMSE, compared on the same rows.

The seed compared the challenger's RMSE on its test set with the champion's RMSE on another
test set. Here the champion is re-scored on the challenger's held-out rows, so both RMSEs (and
the paired bootstrap of their difference) come from exactly the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from predictor.transform import CATEGORICAL

if TYPE_CHECKING:
    import pandas as pd

    from predictor.model import LeadScoringModel
    from training.registry.base import ModelVersion

SCORE_CHUNK_ROWS = 50_000


@dataclass
class Holdout:
    """Held-out rows of a training run: what both models are scored on.

    Attributes:
        columns: Prepared feature columns (``TrainResult.holdout``): numeric and boolean
            features as float with NaN, categorical ones as strings with NaN.
        target: The true values (``TrainResult.holdout_target``).
    """

    columns: pd.DataFrame
    target: np.ndarray

    @classmethod
    def from_result(cls, result: Any) -> Holdout:
        """The held-out rows of a ``training.train.TrainResult``."""
        return cls(columns=result.holdout, target=np.asarray(result.holdout_target, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.target)


@dataclass(frozen=True)
class Decision:
    """A champion/challenger decision.

    Attributes:
        promote: Whether the challenger becomes champion.
        reason: Why, in words (goes to the promotion log).
        challenger_rmse: The challenger's RMSE.
        champion_rmse: The champion's RMSE on the same rows (None without a champion).
        rows: How many rows both were scored on (None when not compared on shared rows).
        ci: Paired-bootstrap confidence interval of ``champion_rmse - challenger_rmse``.
        imputed: Champion features the held-out rows lack (or hold with another type), which
            the champion was given as missing values.
    """

    promote: bool
    reason: str
    challenger_rmse: float | None
    champion_rmse: float | None = None
    rows: int | None = None
    ci: tuple[float, float] | None = None
    imputed: tuple[str, ...] = ()


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(y_pred) - y_true) ** 2)))


def score_on_holdout(
    model: LeadScoringModel, holdout: Holdout, holdout_schema: dict[str, str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Scores a model on held-out rows prepared for another model's schema.

    A feature the model expects but the rows lack, or hold with another type (a renamed,
    removed or retyped feature), is passed as a missing value: the fitted transform imputes
    it exactly as serving does for a request without that field. So a champion with an older
    schema is scored as it would score leads sent in the challenger's schema.

    Args:
        model: The model to score.
        holdout: The rows.
        holdout_schema: Feature name → type of the holdout's columns.

    Returns:
        The predictions and the names of the features passed as missing.
    """
    n = len(holdout)
    import pandas as pd  # imported here, as scipy below: listing the registry need not pay for them

    columns: dict[str, Any] = {}
    imputed = []
    for name, kind in model.transform.feature_types().items():
        if holdout_schema.get(name) == kind and name in holdout.columns:
            columns[name] = holdout.columns[name]
        else:
            imputed.append(name)
            columns[name] = pd.Series(np.full(n, None, dtype=object) if kind == CATEGORICAL else np.full(n, np.nan))
    # In chunks: the dense model matrix of a large held-out set would not fit in memory at once.
    chunks = [
        model.predict_matrix(model.transform.transform_columns(
            {name: column.iloc[start:start + SCORE_CHUNK_ROWS] for name, column in columns.items()}))
        for start in range(0, n, SCORE_CHUNK_ROWS)
    ]
    return (np.concatenate(chunks) if chunks else np.empty(0, dtype=np.float32)), tuple(imputed)


def improvement_interval(
    target: np.ndarray,
    champion_pred: np.ndarray,
    challenger_pred: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Paired-bootstrap interval of ``RMSE(champion) - RMSE(challenger)`` on the same rows.

    Rows are resampled with replacement and both RMSEs are recomputed on each resample (the
    pairing keeps each row's two errors together), with scipy's percentile bootstrap.

    Returns:
        The interval's lower and upper bounds; a positive lower bound means the challenger is
        better beyond resampling noise.
    """
    from scipy import stats  # imported here: a third of a second that listing the registry need not pay

    champion_se = (np.asarray(champion_pred, dtype=np.float64) - target) ** 2
    challenger_se = (np.asarray(challenger_pred, dtype=np.float64) - target) ** 2

    def difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.sqrt(a.mean(axis=axis)) - np.sqrt(b.mean(axis=axis))

    # Batches bound the memory of the resample matrix (batch x rows) on large held-out sets.
    batch = max(1, min(n_resamples, 20_000_000 // max(len(target), 1)))
    result = stats.bootstrap(
        (champion_se, challenger_se), difference, paired=True, vectorized=True, n_resamples=n_resamples,
        confidence_level=confidence, method="percentile", batch=batch, rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger replaces the champion.

    Attributes:
        min_improvement: The challenger's RMSE must be lower than the champion's by at least
            this much (and strictly lower: an equal RMSE keeps the champion).
        require_significance: Also require the paired-bootstrap interval of the improvement to
            lie above zero.
        confidence: Confidence level of that interval.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed (decisions are reproducible).
    """

    min_improvement: float = 0.0
    require_significance: bool = False
    confidence: float = 0.95
    n_resamples: int = 2000
    seed: int = 0

    def decide(
        self,
        challenger: LeadScoringModel,
        champion: LeadScoringModel | None,
        holdout: Holdout,
        champion_version: ModelVersion | None = None,
    ) -> Decision:
        """Compares a challenger with the champion on the challenger's held-out rows.

        Args:
            challenger: The newly trained model.
            champion: The current champion (None: the challenger wins as the first model).
            holdout: The challenger's held-out rows.
            champion_version: The champion's registry entry (for the reason's wording).
        """
        schema = challenger.transform.feature_types()
        challenger_pred, _ = score_on_holdout(challenger, holdout, schema)
        challenger_rmse = rmse(holdout.target, challenger_pred)
        rows = len(holdout)
        if champion is None:
            return Decision(True, "first model: no champion yet", challenger_rmse, rows=rows)
        champion_pred, imputed = score_on_holdout(champion, holdout, schema)
        champion_rmse = rmse(holdout.target, champion_pred)
        improvement = champion_rmse - challenger_rmse
        label = f"champion {champion_version.version}" if champion_version else "champion"
        facts = (f"challenger RMSE {challenger_rmse:.5f} vs {label} RMSE {champion_rmse:.5f} "
                 f"on the same {rows:,} held-out rows")
        if imputed:
            facts += f" (champion given {len(imputed)} feature(s) it expects as missing: {', '.join(imputed)})"
        ci = None
        if self.require_significance:
            ci = improvement_interval(holdout.target, champion_pred, challenger_pred, self.confidence,
                                      self.n_resamples, self.seed)

        def verdict(promote: bool, why: str) -> Decision:
            return Decision(promote, f"{why}: {facts}", challenger_rmse, champion_rmse, rows, ci, imputed)

        if not improvement > 0:
            return verdict(False, "rejected, not better than the champion")
        if improvement < self.min_improvement:
            return verdict(False, f"rejected, improvement {improvement:.5f} is below the minimum "
                                  f"{self.min_improvement:g}")
        level = f"{self.confidence:.0%}"
        if ci is not None and not ci[0] > 0:
            return verdict(False, f"rejected, improvement {improvement:.5f} is not significant "
                                  f"({level} interval [{ci[0]:.5f}, {ci[1]:.5f}] includes zero)")
        significance = f", {level} interval [{ci[0]:.5f}, {ci[1]:.5f}]" if ci is not None else ""
        return verdict(True, f"promoted, RMSE lower by {improvement:.5f}{significance}")
