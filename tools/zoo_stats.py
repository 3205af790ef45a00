"""Print the table of :mod:`sparsesim.workloads.capture.zoo_stats` from the real torch models.

``sparsesim list`` prints each zoo model's parameters and dense forward MACs per sample
without importing torch, from a table stored in ``src/sparsesim/workloads/capture/zoo_stats.py``. After
changing or adding a zoo model, regenerate the table's body with
``.venv/bin/python tools/zoo_stats.py`` and paste it in; ``tests/workloads/test_zoo_stats.py``
fails until the stored figures equal the models' (needs torch).
"""

from __future__ import annotations

from sparsesim.workloads.capture import MODELS
from sparsesim.workloads.capture.stats import model_stats
from sparsesim.workloads.capture.zoo_stats import stat_keys


def main() -> None:
    for name, image_size in stat_keys():
        st = model_stats(MODELS.get(name), **({"image_size": image_size} if image_size else {}))
        print(f'    ("{name}", {image_size}): ({st.params:_}, {st.macs:_}),')


if __name__ == "__main__":
    main()
