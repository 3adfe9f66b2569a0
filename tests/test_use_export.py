"""ncf_lib.use.export: exported embeddings round-trip with their ids and titles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ncf_lib.cli import main


def test_export_round_trips(ml_checkpoint, tmp_path, capsys):
    from ncf_lib.checkpoints import load_checkpoint

    assert main(["export", str(ml_checkpoint), str(tmp_path / "emb")]) == 0
    model = load_checkpoint(ml_checkpoint).model
    saved = np.load(tmp_path / "emb" / "embeddings.npz")
    items = torch.cat([model.gmf_item_embedding.weight, model.mlp_item_embedding.weight], 1)
    np.testing.assert_array_equal(saved["item_vectors"], items.detach().numpy())
    width = model.gmf_user_embedding.embedding_dim + model.mlp_user_embedding.embedding_dim
    assert saved["user_vectors"].shape == (120, width) and saved["item_ids"][0] == 1
    table = pd.read_csv(tmp_path / "emb" / "items.csv")
    assert table.columns[:3].tolist() == ["item_id", "title", "e0"]
    np.testing.assert_allclose(table.iloc[:, 2:].to_numpy(), saved["item_vectors"], rtol=1e-7)
    assert (table["title"] == saved["titles"]).all()
