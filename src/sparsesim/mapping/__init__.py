"""The mapper: the SRAM-level loop nest of one GEMM on one dataflow, its space, cost and search apart.

Like ZigZag's stages, three jobs live in three modules, each importing only those before it:

* :mod:`.space` -- the nests a dataflow allows (:class:`~.space.Mapping`, :class:`~.space.NestSpace`):
  enumeration, snapping of tile sizes to array blocks and time chunks, pruning of what the tile
  model cannot run;
* :mod:`.cost` -- what a nest costs: traffic, the tile schedule and its timing recurrence,
  energy, and the bounds (per nest for the search; the I/O bound of the whole GEMM);
* :mod:`.search` -- which nest wins: branch and bound over the candidates, pinned nests, the
  comparison with the legacy schedule.

The spatial dimensions of the dataflow are tiled in whole array blocks (``R`` or ``C``), so a
tile is a block of folds; the streamed (time) dimension is cut into *chunks* of at least ``R``
elements where a chunk is a fold of its own (the re-preload hides behind the chunk's streaming
as it hides behind a whole fold's, so the array's compute cycles of a dense GEMM never change).
Where the reduction streams through time (``os``) its chunks stay innermost: the array sees one
uninterrupted fold and only the buffer is refilled in pieces.

This package takes the dataflow as its :class:`~sparsesim.hardware.dataflow_kind.DataflowKind`
and never imports :mod:`sparsesim.dataflows` (which imports it).
"""

from sparsesim.mapping.cost import Evaluation, Traffic, dram_bounds, evaluate
from sparsesim.mapping.search import choose, pick_plan, pinned
from sparsesim.mapping.space import Mapping, NestSpace, mapping_text

# the search function stays ``mapping.search.search``: a name here would hide its module
__all__ = ["Evaluation", "Mapping", "NestSpace", "Traffic", "choose", "dram_bounds", "evaluate", "mapping_text",
           "pick_plan", "pinned"]
