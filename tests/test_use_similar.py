"""ncf_lib.use.similar: similar movies from the item vectors, and the similar command."""

from __future__ import annotations

import numpy as np
import torch

from ncf_lib.cli import main
from ncf_lib.models import GMF
from ncf_lib.use.similar import similar_items


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
