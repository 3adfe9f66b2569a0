"""The original tutorial's data path, model and metrics, kept as they were, for benchmarking.

Copied from ``ncf_tutorial_seed.md`` (the Colab notebook this project grew from) with the
smallest changes that let it run on Python 3.11 and current PyTorch:

* ``random.sample`` no longer accepts a set: each user's negative pool is kept as a list
  (built once per user, as the set was);
* the ``argparse`` namespace is replaced by keyword arguments.

Everything else (per-row Python loops, the per-sample ``Dataset``, ``DataLoader`` workers,
the sigmoid inside the model with ``BCELoss``, ``topk`` metrics) is the original tutorial's.
Only for measuring: do not use it to learn NCF.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pandas as pd
import torch
from torch import nn


class RatingDataset(torch.utils.data.Dataset):
    def __init__(self, user_list, item_list, rating_list):
        super().__init__()
        self.user_list, self.item_list, self.rating_list = user_list, item_list, rating_list

    def __len__(self):
        return len(self.user_list)

    def __getitem__(self, idx):
        return (
            torch.tensor(self.user_list[idx], dtype=torch.long),
            torch.tensor(self.item_list[idx], dtype=torch.long),
            torch.tensor(self.rating_list[idx], dtype=torch.float),
        )


class NCFData:
    """The original tutorial's ``NCF_Data``: re-index, leave-one-out, negatives, loaders."""

    def __init__(
        self,
        ratings,
        *,
        num_ng=4,
        num_ng_test=100,
        batch_size=256,
        seed=42,
        train_workers=4,
        test_workers=2,
    ):
        self.ratings = ratings
        self.num_ng, self.num_ng_test, self.batch_size = num_ng, num_ng_test, batch_size
        self.train_workers, self.test_workers = train_workers, test_workers
        self.preprocess_ratings = self._reindex(self.ratings)
        self.user_pool = set(self.ratings["user_id"].unique())
        self.item_pool = set(self.ratings["item_id"].unique())
        self.train_ratings, self.test_ratings = self._leave_one_out(self.preprocess_ratings)
        self.negatives = self._negative_sampling(self.preprocess_ratings)
        random.seed(seed)

    def _reindex(self, ratings):
        user_list = list(ratings["user_id"].drop_duplicates())
        user2id = {w: i for i, w in enumerate(user_list)}
        item_list = list(ratings["item_id"].drop_duplicates())
        item2id = {w: i for i, w in enumerate(item_list)}
        ratings["user_id"] = ratings["user_id"].apply(lambda x: user2id[x])
        ratings["item_id"] = ratings["item_id"].apply(lambda x: item2id[x])
        ratings["rating"] = ratings["rating"].apply(lambda x: float(x > 0))
        return ratings

    def _leave_one_out(self, ratings):
        ratings["rank_latest"] = ratings.groupby(["user_id"])["timestamp"].rank(
            method="first", ascending=False
        )
        test = ratings.loc[ratings["rank_latest"] == 1]
        train = ratings.loc[ratings["rank_latest"] > 1]
        assert train["user_id"].nunique() == test["user_id"].nunique()
        return train[["user_id", "item_id", "rating"]], test[["user_id", "item_id", "rating"]]

    def _negative_sampling(self, ratings):
        status = (
            ratings.groupby("user_id")["item_id"]
            .apply(set)
            .reset_index()
            .rename(columns={"item_id": "interacted_items"})
        )
        # Python 3.11: random.sample needs a sequence (the original tutorial passed the set itself).
        status["negative_items"] = status["interacted_items"].apply(
            lambda x: list(self.item_pool - x)
        )
        status["negative_samples"] = status["negative_items"].apply(
            lambda x: random.sample(x, self.num_ng_test)
        )
        return status[["user_id", "negative_items", "negative_samples"]]

    def get_train_instance(self):
        users, items, ratings = [], [], []
        train_ratings = pd.merge(
            self.train_ratings, self.negatives[["user_id", "negative_items"]], on="user_id"
        )
        train_ratings["negatives"] = train_ratings["negative_items"].apply(
            lambda x: random.sample(x, self.num_ng)
        )
        for row in train_ratings.itertuples():
            users.append(int(row.user_id))
            items.append(int(row.item_id))
            ratings.append(float(row.rating))
            for i in range(self.num_ng):
                users.append(int(row.user_id))
                items.append(int(row.negatives[i]))
                ratings.append(float(0))
        dataset = RatingDataset(users, items, ratings)
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.batch_size, shuffle=True, num_workers=self.train_workers
        )

    def get_test_instance(self):
        users, items, ratings = [], [], []
        test_ratings = pd.merge(
            self.test_ratings, self.negatives[["user_id", "negative_samples"]], on="user_id"
        )
        for row in test_ratings.itertuples():
            users.append(int(row.user_id))
            items.append(int(row.item_id))
            ratings.append(float(row.rating))
            for i in row.negative_samples:
                users.append(int(row.user_id))
                items.append(int(i))
                ratings.append(float(0))
        dataset = RatingDataset(users, items, ratings)
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.num_ng_test + 1, shuffle=False, num_workers=self.test_workers
        )


def read_ratings_dat(path):
    """The original tutorial's parser: pandas' python engine on '::'."""
    return pd.read_csv(
        path, sep="::", names=["user_id", "item_id", "rating", "timestamp"], engine="python"
    )


class NeuMF(nn.Module):
    """The original tutorial's NeuMF (sigmoid inside, squeezed output)."""

    def __init__(self, num_users, num_items, factor_num=32, layers=(64, 32, 16, 8)):
        super().__init__()
        mlp_dim = int(layers[0] / 2)
        self.embedding_user_mlp = nn.Embedding(num_users, mlp_dim)
        self.embedding_item_mlp = nn.Embedding(num_items, mlp_dim)
        self.embedding_user_mf = nn.Embedding(num_users, factor_num)
        self.embedding_item_mf = nn.Embedding(num_items, factor_num)
        self.fc_layers = nn.ModuleList()
        for in_size, out_size in zip(layers[:-1], layers[1:]):
            self.fc_layers.append(nn.Linear(in_size, out_size))
            self.fc_layers.append(nn.ReLU())
        self.affine_output = nn.Linear(layers[-1] + factor_num, 1)
        self.logistic = nn.Sigmoid()
        for emb in (
            self.embedding_user_mlp,
            self.embedding_item_mlp,
            self.embedding_user_mf,
            self.embedding_item_mf,
        ):
            nn.init.normal_(emb.weight, std=0.01)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                m.bias.data.zero_()

    def forward(self, user_indices, item_indices):
        mlp_vector = torch.cat(
            [self.embedding_user_mlp(user_indices), self.embedding_item_mlp(item_indices)], dim=-1
        )
        mf_vector = torch.mul(
            self.embedding_user_mf(user_indices), self.embedding_item_mf(item_indices)
        )
        for layer in self.fc_layers:
            mlp_vector = layer(mlp_vector)
        return self.logistic(
            self.affine_output(torch.cat([mlp_vector, mf_vector], dim=-1))
        ).squeeze()


def hit(ng_item, pred_items):
    return 1 if ng_item in pred_items else 0


def ndcg(ng_item, pred_items):
    if ng_item in pred_items:
        return np.reciprocal(np.log2(pred_items.index(ng_item) + 2))
    return 0


def metrics(model, test_loader, top_k, device="cpu"):
    HR, NDCG = [], []
    for user, item, _ in test_loader:
        predictions = model(user.to(device), item.to(device))
        _, indices = torch.topk(predictions, top_k)
        recommends = torch.take(item, indices).cpu().numpy().tolist()
        ng_item = item[0].item()
        HR.append(hit(ng_item, recommends))
        NDCG.append(ndcg(ng_item, recommends))
    return np.mean(HR), np.mean(NDCG)


def train_batches(model, loader, max_batches=None, lr=0.001):
    """The original tutorial's training loop (BCELoss on sigmoid outputs, Adam), maybe cut short.

    Returns the number of batches run and the seconds until the first batch was trained
    (the ``DataLoader`` starting its workers), so that a cut-short epoch can be
    extrapolated from the steady rate without multiplying the start-up.
    """
    loss_function = nn.BCELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n, start, first = 0, time.perf_counter(), 0.0
    batches = iter(loader)
    for user, item, label in batches:
        optimizer.zero_grad()
        loss = loss_function(model(user, item), label)
        loss.backward()
        optimizer.step()
        n += 1
        if n == 1:
            first = time.perf_counter() - start
        if max_batches is not None and n >= max_batches:
            break
    del batches  # stops the DataLoader's workers cleanly when cut short
    return n, first
