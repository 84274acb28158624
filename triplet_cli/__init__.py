"""triplet-loss: triplet losses and triplet mining over embedding files.

    from triplet_cli import compute_loss, evaluate, mine_negatives, mine_triplets

The public functions are imported lazily, so `triplet-loss --help` loads neither numba nor pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# How long idle BLAS threads spin, as the CLI sets it unless already set (before numpy loads
# OpenBLAS): after a product they would otherwise spin on the cores the mining kernels need
# next. Batch-hard's block loop against its products' floor, 2 cores, N = 16,384: 2.03x -> 1.54x
# (before issue 10). Results do not depend on it. (The kernels' own threads end with each call.)
THREAD_SPIN = {"OPENBLAS_THREAD_TIMEOUT": "4"}
__all__ = ["ComputeResult", "EvaluateResult", "MineResult", "NegativesResult", "TripletLossError",
           "compute_loss", "evaluate", "mine_negatives", "mine_triplets", "prepare_compute",
           "prepare_evaluate", "prepare_mine", "prepare_negatives"]

if TYPE_CHECKING:
    from .compute import ComputeResult, compute_loss, prepare_compute
    from .errors import TripletLossError
    from .evaluation import EvaluateResult, evaluate, prepare_evaluate
    from .mine import MineResult, mine_triplets, prepare_mine
    from .negatives import NegativesResult, mine_negatives, prepare_negatives

_HOMES = {"compute_loss": "compute", "ComputeResult": "compute", "prepare_compute": "compute",
          "mine_triplets": "mine", "MineResult": "mine", "prepare_mine": "mine",
          "TripletLossError": "errors", "evaluate": "evaluation", "EvaluateResult": "evaluation",
          "prepare_evaluate": "evaluation", "mine_negatives": "negatives",
          "NegativesResult": "negatives", "prepare_negatives": "negatives"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names (imported lazily): what a notebook's completion lists."""
    return sorted({*__all__, "__version__"})
