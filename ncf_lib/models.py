"""GMF, MLP and NeuMF (He et al., "Neural Collaborative Filtering", WWW 2017).

All three share one interface (:class:`Recommender`):

* ``forward(users, items)`` takes ``(batch,)`` id tensors and returns ``(batch,)`` **logits**;
  train them with ``BCEWithLogitsLoss`` and apply ``torch.sigmoid`` only where a probability
  is wanted (the seed notebook put a sigmoid inside the model and used ``BCELoss``, which is
  less stable numerically);
* ``score(users, items)`` takes ``(n,)`` users and ``(n, c)`` candidate items and returns
  ``(n, c)`` logits in one call (evaluation and recommendation);
* ``loss_and_grads_(users, items, labels)`` returns the batch's mean BCE loss and fills every
  ``.grad`` by hand, exactly as ``loss.backward()`` would (tested bit for bit): CPU training
  uses it because autograd's bookkeeping costs as much as the arithmetic of models this
  small. ``forward`` stays the definition; the backward passes sit next to each model.

Sizes follow the seed notebook and the paper: 32 predictive factors, MLP tower
``[64, 32, 16, 8]`` whose first entry is the concatenated user and item embeddings (so each
MLP embedding is ``layers[0] / 2 = 32`` wide).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a model.

    Attributes:
        factor_num: GMF embedding size (the paper's "predictive factors").
        layers: MLP tower widths; ``layers[0]`` is the concatenated embedding, so each MLP
            embedding is ``layers[0] // 2`` wide. A single entry means no hidden layer.
        dropout: dropout after every hidden MLP layer. Default 0: the paper uses none, and
            the seed notebook declared 0.2 but never applied it, so its published numbers
            were obtained without dropout too. Set it to regularise the MLP tower.
    """

    factor_num: int = 32
    layers: tuple[int, ...] = (64, 32, 16, 8)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.factor_num < 1:
            raise ValueError(f"factor_num must be positive, got {self.factor_num}")
        if not self.layers or self.layers[0] % 2 or min(self.layers) < 1:
            raise ValueError(
                f"layers must be positive widths whose first is even (user and item "
                f"embeddings concatenated), got {list(self.layers)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "layers", tuple(int(w) for w in self.layers))


class Recommender(nn.Module):
    """Base class: ``forward`` gives ``(batch,)`` logits, ``score`` a ``(n, c)`` matrix."""

    def __init__(self, n_users: int, n_items: int, config: ModelConfig) -> None:
        super().__init__()
        self.n_users, self.n_items, self.config = n_users, n_items, config

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits for ``(n,)`` users against ``(n, c)`` candidate items: ``(n, c)``."""
        n, c = items.shape
        return self(users.repeat_interleave(c), items.reshape(-1)).view(n, c)

    def embedding_tables(self) -> list[tuple[nn.Parameter, str]]:
        """Every embedding table (biases included) with the side it is indexed by, ``user``
        or ``item``; tables are found by name (``*user_embedding``, ``*user_bias``, ...)."""
        return [(module.weight, "user" if name.endswith(("user_embedding", "user_bias"))
                 else "item")
                for name, module in self.named_modules() if isinstance(module, nn.Embedding)]

    def l2_penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Sum of squares of the embedding rows a batch uses (``(batch,)`` users and items),
        each row counted once per occurrence. Regularises only what the batch touches, as MF
        implementations do."""
        total = torch.zeros((), device=users.device)
        for weight, side in self.embedding_tables():
            total = total + weight[users if side == "user" else items].pow(2).sum()
        return total

    @property
    def has_hand_gradients(self) -> bool:
        """Whether :meth:`loss_and_grads_` can replace autograd for this model: the class
        writes one, and there is no dropout (whose random masks it does not draw)."""
        return (type(self).loss_and_grads_ is not Recommender.loss_and_grads_
                and self.config.dropout == 0)

    def loss_and_grads_(self, users: torch.Tensor, items: torch.Tensor,
                        labels: torch.Tensor) -> torch.Tensor:
        """Mean ``BCEWithLogitsLoss`` of a batch, with every parameter's ``.grad`` set to
        exactly what ``loss.backward()`` would give (after ``zero_grad``), computed by hand.

        Same numbers as autograd (tested bit for bit), without building a graph: for models
        this small, autograd's per-operator bookkeeping is a large part of a CPU step.
        """
        raise NotImplementedError(f"{type(self).__name__} has no hand-written gradients")

    def _grad(self, param: torch.Tensor) -> torch.Tensor:
        """``param.grad``, allocated once and then overwritten in place."""
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        return param.grad

    def _table_grad_(self, table: torch.Tensor, ids: torch.Tensor, rows: torch.Tensor) -> None:
        """Embedding gradient: ``(batch, dim)`` row gradients summed into a zeroed table
        (``index_add_``, as autograd; ``index_put_(accumulate=True)`` is faster but sums
        large batches in a different order on 2 threads, so not bit for bit the same)."""
        self._grad(table).zero_().index_add_(0, ids, rows)

    def _linear_grad_(self, layer: nn.Linear, d_out: torch.Tensor, x: torch.Tensor
                      ) -> torch.Tensor:
        """Gradients of ``layer`` from ``(batch, out)`` output gradients and its ``(batch, in)``
        input; returns the ``(batch, in)`` input gradient."""
        torch.mm(d_out.t(), x, out=self._grad(layer.weight))
        torch.sum(d_out, 0, out=self._grad(layer.bias))
        return d_out @ layer.weight

    @torch.no_grad()
    def add_l2_grad_(self, users: torch.Tensor, items: torch.Tensor, weight: float) -> None:
        """Add the gradient of ``weight * l2_penalty(users, items)`` to the tables' ``.grad``.

        The same update as adding the penalty to the loss (``2 * weight * row`` per
        occurrence), without a second lookup and backward pass through every table: call it
        after ``loss.backward()``.
        """
        for table, side in self.embedding_tables():
            ids = users if side == "user" else items
            table.grad.index_add_(0, ids, table[ids], alpha=2 * weight)


def _rows(table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """``(batch, dim)`` rows of an embedding table, without autograd (``index_select`` is
    the fastest lookup on CPU)."""
    return table.weight.index_select(0, ids)


def _relu_grad(d_out: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Gradient through a ReLU from its output gradient and its output: autograd's own
    kernel (one operator instead of a comparison, a cast and a product)."""
    return torch.ops.aten.threshold_backward(d_out, out, 0)


def _bce_and_grad(logits: torch.Tensor, labels: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean BCE-with-logits of ``(batch,)`` logits and its ``(batch, 1)`` gradient."""
    loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
    return loss, (torch.sigmoid(logits) - labels).div_(labels.shape[0]).unsqueeze(1)


def _embedding(n: int, dim: int) -> nn.Embedding:
    emb = nn.Embedding(n, dim)
    nn.init.normal_(emb.weight, std=0.01)  # as the paper's code and the seed
    return emb


def _linear(n_in: int, n_out: int) -> nn.Linear:
    """A hidden layer: Glorot (Xavier) uniform weights, zero bias, as the paper's Keras code
    (Keras' default ``Dense`` initialiser) and the seed."""
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _output(n_in: int) -> nn.Linear:
    """The prediction layer: LeCun uniform weights, ``U(-sqrt(3 / n_in), sqrt(3 / n_in))``, and
    a zero bias, as the paper's code (``Dense(1, init='lecun_uniform')`` in GMF.py, MLP.py
    and NeuMF.py) and guoyang9/NCF (``kaiming_uniform_(a=1, nonlinearity='sigmoid')``, the
    same distribution). The seed's NeuMF used Xavier uniform here, whose bound for one output,
    ``sqrt(6 / (n_in + 1))``, is about 1.4 times larger."""
    layer = nn.Linear(n_in, 1)
    bound = (3.0 / n_in) ** 0.5
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.zeros_(layer.bias)
    return layer


class GMF(Recommender):
    """Generalised matrix factorisation: ``h^T (p_u * q_i) + b``."""

    def __init__(self, n_users: int, n_items: int, config: ModelConfig = ModelConfig()) -> None:
        super().__init__(n_users, n_items, config)
        self.user_embedding = _embedding(n_users, config.factor_num)
        self.item_embedding = _embedding(n_items, config.factor_num)
        self.output = _output(config.factor_num)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``(batch, factor_num)`` element-wise product of the embeddings."""
        return self.user_embedding(users) * self.item_embedding(items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(users, items)).squeeze(-1)

    @torch.no_grad()
    def loss_and_grads_(self, users, items, labels):
        p, q = _rows(self.user_embedding, users), _rows(self.item_embedding, items)
        h = p * q
        loss, d = _bce_and_grad(torch.addmm(self.output.bias, h, self.output.weight.t())
                                .squeeze(1), labels)
        dh = self._linear_grad_(self.output, d, h)  # (batch, factor_num)
        self._table_grad_(self.user_embedding.weight, users, dh * q)
        self._table_grad_(self.item_embedding.weight, items, dh * p)
        return loss


class MLP(Recommender):
    """Multi-layer perceptron on the concatenated user and item embeddings."""

    def __init__(self, n_users: int, n_items: int, config: ModelConfig = ModelConfig()) -> None:
        super().__init__(n_users, n_items, config)
        dim = config.layers[0] // 2
        self.user_embedding = _embedding(n_users, dim)
        self.item_embedding = _embedding(n_items, dim)
        tower: list[nn.Module] = []
        for n_in, n_out in zip(config.layers[:-1], config.layers[1:]):
            tower += [_linear(n_in, n_out), nn.ReLU()]
            if config.dropout:
                tower.append(nn.Dropout(config.dropout))
        self.tower = nn.Sequential(*tower)
        self.output = _output(config.layers[-1])

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``(batch, layers[-1])`` output of the last hidden layer."""
        x = torch.cat([self.user_embedding(users), self.item_embedding(items)], dim=-1)
        return self.tower(x)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(users, items)).squeeze(-1)

    def _tower_forward(self, users, items) -> list[torch.Tensor]:
        """Inputs of every layer, then the last hidden output: ``len(tower layers) + 1``."""
        acts = [torch.cat([_rows(self.user_embedding, users),
                           _rows(self.item_embedding, items)], 1)]
        for layer in self._layers():
            acts.append(torch.addmm(layer.bias, acts[-1], layer.weight.t()).relu_())
        return acts

    def _tower_backward_(self, users, items, acts: list[torch.Tensor], dh: torch.Tensor
                         ) -> None:
        """Gradients of the tower and the MLP embeddings from ``(batch, layers[-1])``."""
        layers = self._layers()
        for k in range(len(layers) - 1, -1, -1):
            dh = self._linear_grad_(layers[k], _relu_grad(dh, acts[k + 1]), acts[k])
        half = self.user_embedding.embedding_dim
        self._table_grad_(self.user_embedding.weight, users, dh[:, :half])
        self._table_grad_(self.item_embedding.weight, items, dh[:, half:])

    def _layers(self) -> list[nn.Linear]:
        return [m for m in self.tower if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def loss_and_grads_(self, users, items, labels):
        acts = self._tower_forward(users, items)
        loss, d = _bce_and_grad(torch.addmm(self.output.bias, acts[-1], self.output.weight.t())
                                .squeeze(1), labels)
        self._tower_backward_(users, items, acts, self._linear_grad_(self.output, d, acts[-1]))
        return loss


class NeuMF(Recommender):
    """Neural matrix factorisation: a GMF and an MLP with separate embeddings, fused by one
    output layer over ``concat(gmf_features, mlp_features)``."""

    def __init__(self, n_users: int, n_items: int, config: ModelConfig = ModelConfig()) -> None:
        super().__init__(n_users, n_items, config)
        self.gmf = GMF(n_users, n_items, config)
        self.mlp = MLP(n_users, n_items, config)
        del self.gmf.output, self.mlp.output  # replaced by the fused output layer
        self.output = _output(config.factor_num + config.layers[-1])

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.gmf.features(users, items), self.mlp.features(users, items)], dim=-1)
        return self.output(x).squeeze(-1)

    @torch.no_grad()
    def loss_and_grads_(self, users, items, labels):
        gmf, mlp, f = self.gmf, self.mlp, self.config.factor_num
        p, q = _rows(gmf.user_embedding, users), _rows(gmf.item_embedding, items)
        acts = mlp._tower_forward(users, items)
        x = torch.cat([p * q, acts[-1]], 1)
        loss, d = _bce_and_grad(torch.addmm(self.output.bias, x, self.output.weight.t())
                                .squeeze(1), labels)
        dx = self._linear_grad_(self.output, d, x)
        self._table_grad_(gmf.user_embedding.weight, users, dx[:, :f] * q)
        self._table_grad_(gmf.item_embedding.weight, items, dx[:, :f] * p)
        mlp._tower_backward_(users, items, acts, dx[:, f:])
        return loss

    @classmethod
    def from_pretrained(cls, gmf: GMF, mlp: MLP, alpha: float = 0.5) -> NeuMF:
        """The paper's pre-training: NeuMF initialised from a trained GMF and MLP.

        Embeddings and hidden layers are copied; the output layer becomes
        ``[alpha * h_gmf, (1 - alpha) * h_mlp]`` with bias ``alpha * b_gmf + (1 - alpha) * b_mlp``,
        so before fine-tuning ``NeuMF(u, i) = alpha * GMF(u, i) + (1 - alpha) * MLP(u, i)``
        (in logits). The two must share users, items and sizes.
        """
        if (gmf.n_users, gmf.n_items) != (mlp.n_users, mlp.n_items):
            raise ValueError("GMF and MLP were trained on different users or items")
        config = ModelConfig(gmf.config.factor_num, mlp.config.layers, mlp.config.dropout)
        model = cls(gmf.n_users, gmf.n_items, config)
        with torch.no_grad():
            for name in ("user_embedding", "item_embedding"):
                getattr(model.gmf, name).weight.copy_(getattr(gmf, name).weight)
                getattr(model.mlp, name).weight.copy_(getattr(mlp, name).weight)
            model.mlp.tower.load_state_dict(mlp.tower.state_dict())
            model.output.weight.copy_(
                torch.cat([alpha * gmf.output.weight, (1 - alpha) * mlp.output.weight], dim=1))
            model.output.bias.copy_(alpha * gmf.output.bias + (1 - alpha) * mlp.output.bias)
        return model


class MF(Recommender):
    """Matrix factorisation with biases: ``b + b_u + b_i + p_u . q_i``.

    The baseline of Rendle et al. (2020), "Neural Collaborative Filtering vs. Matrix
    Factorization Revisited": trained like the NCF models (logistic loss on sampled
    negatives) with L2 regularisation (``TrainConfig.l2``) and tuned on validation, it
    matches or beats NeuMF. Uses ``factor_num`` only.
    """

    def __init__(self, n_users: int, n_items: int, config: ModelConfig = ModelConfig()) -> None:
        super().__init__(n_users, n_items, config)
        self.user_embedding = _embedding(n_users, config.factor_num)
        self.item_embedding = _embedding(n_items, config.factor_num)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user_embedding(users) * self.item_embedding(items)).sum(-1)
        return (self.bias + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)
                + dot)

    @torch.no_grad()
    def loss_and_grads_(self, users, items, labels):
        p, q = _rows(self.user_embedding, users), _rows(self.item_embedding, items)
        bu, bi = _rows(self.user_bias, users), _rows(self.item_bias, items)  # (batch, 1)
        logits = self.bias + bu.squeeze(-1) + bi.squeeze(-1) + (p * q).sum(-1)
        loss, d = _bce_and_grad(logits, labels)
        self._grad(self.bias).copy_(d.sum())
        self._table_grad_(self.user_bias.weight, users, d)
        self._table_grad_(self.item_bias.weight, items, d)
        self._table_grad_(self.user_embedding.weight, users, d * q)
        self._table_grad_(self.item_embedding.weight, items, d * p)
        return loss


MODELS: dict[str, type[Recommender]] = {"gmf": GMF, "mlp": MLP, "neumf": NeuMF, "mf": MF}


def build_model(name: str, n_users: int, n_items: int, config: ModelConfig = ModelConfig()
                ) -> Recommender:
    """A fresh model by name (``gmf``, ``mlp`` or ``neumf``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name](n_users, n_items, config)


def model_name(model: Recommender) -> str:
    """The :data:`MODELS` key of a model instance."""
    return next(key for key, cls in MODELS.items() if type(model) is cls)


def config_dict(config: ModelConfig) -> dict:
    """A plain dict of a config (for checkpoints and TensorBoard)."""
    out = asdict(config)
    out["layers"] = list(config.layers)
    return out

