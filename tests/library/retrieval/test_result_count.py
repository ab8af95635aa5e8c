"""One limit on the results of a search (vop/result_count.py): retrieve.py topk=,
eval.py examples_topk=, the Python API and the JSON API refuse the same values, naming the key."""
from __future__ import annotations

import pytest

from tests.helpers import assert_one_block, command_in_process
from vop.commands.eval import evaluate_run
from vop.commands.retrieve import retrieve
from vop.errors import InputError
from vop.retrieval.pipeline import check_topk
from vop.result_count import MAX_TOPK, topk_problem


@pytest.mark.parametrize("k", [0, -1, MAX_TOPK + 1, 2.5, "5", True, None])
def test_a_result_count_outside_1_to_the_limit_is_refused(k):
    assert topk_problem(k) == f"must be a whole number from 1 to {MAX_TOPK}"
    with pytest.raises(InputError, match=rf"topk={k!r}: must be a whole number from 1 to {MAX_TOPK}"):
        check_topk(k)


@pytest.mark.parametrize("k", [1, 5, MAX_TOPK])
def test_the_limits_own_values_are_taken(k):
    assert topk_problem(k) is None and check_topk(k) == k


def test_the_commands_refuse_the_same_values_before_loading_anything(tmp_path):
    for key in ("topk", "examples_topk"):
        command, name = (retrieve, "retrieve") if key == "topk" else (evaluate_run, "eval")
        for bad in (0, MAX_TOPK + 1):
            proc = command_in_process(command, name, tmp_path, "gallery=nothing.safetensors", "query=a cat",
                                      f"{key}={bad}") if key == "topk" else \
                command_in_process(command, name, tmp_path, "model=clip_tiny", "data=synthetic", f"{key}={bad}")
            assert_one_block(proc, f"{key}={bad}", f"{MAX_TOPK}")
