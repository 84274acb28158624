"""triplet-loss: triplet losses and triplet mining over embedding files.

    from triplet_cli import compute_loss, evaluate, mine_negatives, mine_triplets

The public functions are imported lazily, so `triplet-loss --help` loads neither numba nor pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# How long idle pool threads spin, as the CLI sets them unless already set (before numpy and
# numba load their libraries): OpenBLAS's threads after a product and libgomp's (numba's omp
# layer, which compute's loss kernels use) after a kernel would otherwise spin on the cores the
# next work needs. Batch-hard's block loop against its products' floor, 2 cores: 2.03x -> 1.54x
# for OpenBLAS's (N = 16,384, before issue 10), 1.22-1.24x -> 1.13-1.17x for libgomp's 300,000
# spins (N = 32,768, while mining still ran on numba's pool). Results do not depend on them.
THREAD_SPIN = {"OPENBLAS_THREAD_TIMEOUT": "4", "GOMP_SPINCOUNT": "10000"}
__all__ = ["ComputeResult", "EvaluateResult", "MineResult", "NegativesResult", "TripletLossError",
           "compute_loss", "evaluate", "mine_negatives", "mine_triplets"]

if TYPE_CHECKING:
    from .compute import ComputeResult, compute_loss
    from .errors import TripletLossError
    from .evaluation import EvaluateResult, evaluate
    from .mine import MineResult, mine_triplets
    from .negatives import NegativesResult, mine_negatives

_HOMES = {"compute_loss": "compute", "ComputeResult": "compute", "mine_triplets": "mine",
          "MineResult": "mine", "TripletLossError": "errors", "evaluate": "evaluation",
          "EvaluateResult": "evaluation", "mine_negatives": "negatives",
          "NegativesResult": "negatives"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
