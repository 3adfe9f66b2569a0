"""ncf_lib.use.similar: similar movies from the item vectors, and the similar command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncf_lib.cli import main
from ncf_lib.models import GMF, ModelConfig, build_model
from ncf_lib.use.similar import side_vectors, similar_items


def test_similar_items_finds_a_near_copy():
    model = GMF(3, 20)
    with torch.no_grad():
        model.item_embedding.weight[7] = model.item_embedding.weight[3] * 2 + 1e-4  # same direction
    items, cosines = similar_items(model, 3, k=5)
    assert items[0] == 7 and cosines[0] > 0.999 and 3 not in items
    assert np.all(np.diff(cosines) <= 0)


def test_similar_command(ml_checkpoint, capsys):
    capsys.readouterr()
    assert main(["similar", str(ml_checkpoint), "--item", "5", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "Closest to Synthetic movie 0005 (id 5) in NeuMF's item space" in out
    from ncf_lib.checkpoints import load_checkpoint

    loaded = load_checkpoint(ml_checkpoint)
    item = int(np.flatnonzero(loaded.item_ids == 5)[0])
    items, cosines = similar_items(loaded.model, item, 3)
    printed = [line.split() for line in out.splitlines()[2:]]
    assert [int(row[1]) for row in printed] == loaded.item_ids[items].tolist()
    assert [row[-1] for row in printed] == [f"{c:.3f}" for c in cosines]


@pytest.mark.parametrize(
    "name, width",
    [("gmf", 1), ("neumf", 1 + 4), ("mlp", 4), ("mf", 1)],  # layers (8, 4): MLP tables of 4
)
def test_side_vectors_keep_every_half_even_of_one_factor(name, width):
    """With ``factor_num=1`` the GMF (or MF) half is a table of width 1: it is kept (NeuMF:
    beside the MLP half); MF's biases are not part of the vectors."""
    model = build_model(name, 5, 7, ModelConfig(factor_num=1, layers=(8, 4)))
    for side, n in (("user", 5), ("item", 7)):
        assert side_vectors(model, side).shape == (n, width)
    items, cosines = similar_items(model, 0, k=3)
    assert items.size == 3 and 0 not in items and np.all(np.abs(cosines) <= 1 + 1e-6)
