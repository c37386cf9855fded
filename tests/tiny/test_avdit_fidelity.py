"""The fast slice of `bench/fidelity.py` (a few dozen training steps on toy data): only the
directions that hold at that size are asserted; the full study's table is in bench/RESULTS.md."""
from __future__ import annotations


def test_fidelity_fast_slice_directions():
    from tests.fixtures.fidelity import study

    res = study(fast=True, log=lambda _: None)
    loss = res["loss"]
    # VauCustom: audio pretraining is what makes the mouth follow the speech (Sync-C 2.15 -> 3.06).
    assert loss["true"] < 0.9 * loss["shuffled"] and loss["true"] < 0.9 * loss["none"]
    # VauCustom Fig. 7: region-selective audio CFG leaves the background closer than global CFG.
    assert res["cfg"]["region 3"]["bg"] < res["cfg"]["global 3"]["bg"]
