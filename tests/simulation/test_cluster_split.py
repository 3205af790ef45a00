"""A dense run split by op over a real Dask LocalCluster gives the rows of one process."""

import pytest

from sparsesim import api
from sparsesim.core.errors import InputError
from sparsesim.workloads.llm_networks import llm_workload


def test_split_over_two_workers_equals_one_process():
    workload = llm_workload("llama_tiny", batch=2, prompt_len=16, gen_len=5)
    sets = {"system.chips": 2, "system.tensor_parallel": 2, "system.interconnect.link_bandwidth_bytes_per_s": 5e10,
            "chip.cores": 2}
    one = api.simulate(workload, accel="edge32", sets=sets)
    split = api.simulate(workload, accel="edge32", sets=sets, workers=2)
    assert split.rows == one.rows
    assert split.total == one.total


def test_a_sparse_replay_is_not_split():
    with pytest.raises(InputError) as err:
        api.simulate(api.gemm(64, 64, 64), accel="edge32", sparsity=["nm:2:4"], workers=2)
    assert "workers" in str(err.value) and "one process" in str(err.value)
