"""GMF, MLP and NeuMF (He et al., "Neural Collaborative Filtering", WWW 2017), and MF.

Every model maps ``(batch,)`` user ids and ``(batch,)`` item ids to ``(batch,)`` **logits**:
train with ``BCEWithLogitsLoss`` and apply ``torch.sigmoid`` only where a probability is
wanted. ``score(users, items)`` ranks ``(n, c)`` candidates for ``(n,)`` users in one call.

Sizes follow the paper: 32 predictive factors, an MLP tower ``[64, 32, 16, 8]`` whose first
entry is the concatenated user and item embeddings (so each MLP embedding is 32 wide).
Initialisation follows the paper's Keras code: embeddings N(0, 0.01), hidden layers Glorot
uniform, the prediction layer LeCun uniform.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ncf_lib.errors import ConfigError
from ncf_lib.memory import model_bytes, require


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a model.

    Attributes:
        factor_num: GMF (and MF) embedding size, the paper's "predictive factors".
        layers: MLP tower widths; ``layers[0]`` is the concatenated embedding, so each MLP
            embedding is ``layers[0] // 2`` wide. A single entry means no hidden layer.
        dropout: dropout after every hidden MLP layer (default 0, as the paper).
    """

    factor_num: int = 32
    layers: tuple[int, ...] = (64, 32, 16, 8)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.factor_num < 1:
            raise ConfigError(f"factor_num must be positive, got {self.factor_num}")
        if not self.layers or self.layers[0] % 2 or min(self.layers) < 1:
            raise ConfigError(
                f"layers must be positive widths whose first is even (user and item "
                f"embeddings concatenated), got {list(self.layers)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "layers", tuple(int(w) for w in self.layers))


def embedding(n: int, dim: int) -> nn.Embedding:
    """An ``(n, dim)`` embedding table drawn from N(0, 0.01), as the paper's code."""
    table = nn.Embedding(n, dim)
    nn.init.normal_(table.weight, std=0.01)
    return table


def mlp_tower(layers: tuple[int, ...], dropout: float = 0.0) -> nn.Sequential:
    """Hidden layers ``layers[0] -> layers[1] -> ...``, each Linear + ReLU (+ Dropout).

    Weights Glorot uniform and biases zero (Keras' default ``Dense``, as the paper's code).
    """
    modules: list[nn.Module] = []
    for n_in, n_out in zip(layers[:-1], layers[1:]):
        linear = nn.Linear(n_in, n_out)
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
        modules += [linear, nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*modules)


def prediction_layer(n_in: int) -> nn.Linear:
    """The output ``h^T x + b``: LeCun uniform ``U(±sqrt(3 / n_in))``, zero bias, as the paper's
    code (``Dense(1, init='lecun_uniform')``) and guoyang9/NCF's ``model.py``."""
    layer = nn.Linear(n_in, 1)
    bound = (3.0 / n_in) ** 0.5
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.zeros_(layer.bias)
    return layer


class Recommender(nn.Module):
    """Base class: ``forward(users, items)`` gives ``(batch,)`` logits."""

    def __init__(self, n_users: int, n_items: int, config: ModelConfig) -> None:
        super().__init__()
        self.n_users, self.n_items, self.config = n_users, n_items, config

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of ``(n,)`` users against ``(n, c)`` candidate items: ``(n, c)``."""
        n, c = items.shape
        return self(users.repeat_interleave(c), items.reshape(-1)).view(n, c)


class GMF(Recommender):
    """Generalised matrix factorisation: ``h^T (p_u * q_i) + b``."""

    def __init__(self, n_users: int, n_items: int, config: ModelConfig = ModelConfig()) -> None:
        super().__init__(n_users, n_items, config)
        self.user_embedding = embedding(n_users, config.factor_num)
        self.item_embedding = embedding(n_items, config.factor_num)
        self.output = prediction_layer(config.factor_num)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        product = self.user_embedding(users) * self.item_embedding(items)  # (batch, factors)
        return self.output(product).squeeze(-1)


class MLP(Recommender):
    """A tower of ReLU layers on the concatenated user and item embeddings."""

    def __init__(self, n_users: int, n_items: int, config: ModelConfig = ModelConfig()) -> None:
        super().__init__(n_users, n_items, config)
        self.user_embedding = embedding(n_users, config.layers[0] // 2)
        self.item_embedding = embedding(n_items, config.layers[0] // 2)
        self.tower = mlp_tower(config.layers, config.dropout)
        self.output = prediction_layer(config.layers[-1])

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.user_embedding(users), self.item_embedding(items)], dim=-1)
        return self.output(self.tower(x)).squeeze(-1)  # tower: (batch, layers[-1])


class NeuMF(Recommender):
    """Neural matrix factorisation: a GMF and an MLP with embeddings of their own, fused by
    one prediction layer over ``concat(p_u * q_i, tower(concat(p'_u, q'_i)))``."""

    def __init__(self, n_users: int, n_items: int, config: ModelConfig = ModelConfig()) -> None:
        super().__init__(n_users, n_items, config)
        self.gmf_user_embedding = embedding(n_users, config.factor_num)
        self.gmf_item_embedding = embedding(n_items, config.factor_num)
        self.mlp_user_embedding = embedding(n_users, config.layers[0] // 2)
        self.mlp_item_embedding = embedding(n_items, config.layers[0] // 2)
        self.tower = mlp_tower(config.layers, config.dropout)
        self.output = prediction_layer(config.factor_num + config.layers[-1])

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        gmf = self.gmf_user_embedding(users) * self.gmf_item_embedding(items)
        mlp = torch.cat([self.mlp_user_embedding(users), self.mlp_item_embedding(items)], dim=-1)
        return self.output(torch.cat([gmf, self.tower(mlp)], dim=-1)).squeeze(-1)


class MF(Recommender):
    """Matrix factorisation with biases: ``b + b_u + b_i + p_u . q_i`` (uses ``factor_num``).

    The baseline of Rendle et al. (RecSys 2020), "Neural Collaborative Filtering vs. Matrix
    Factorization Revisited": trained like the NCF models, with an L2 penalty tuned on
    validation (:func:`ncf_lib.study.baselines.tune_mf`), it matches or beats NeuMF.
    """

    def __init__(self, n_users: int, n_items: int, config: ModelConfig = ModelConfig()) -> None:
        super().__init__(n_users, n_items, config)
        self.user_embedding = embedding(n_users, config.factor_num)
        self.item_embedding = embedding(n_items, config.factor_num)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user_embedding(users) * self.item_embedding(items)).sum(-1)
        b_u, b_i = self.user_bias(users).squeeze(-1), self.item_bias(items).squeeze(-1)
        return self.bias + b_u + b_i + dot


MODELS: dict[str, type[Recommender]] = {"gmf": GMF, "mlp": MLP, "neumf": NeuMF, "mf": MF}


def build_model(
    name: str, n_users: int, n_items: int, config: ModelConfig = ModelConfig()
) -> Recommender:
    """A fresh model by name: ``gmf``, ``mlp``, ``neumf`` or ``mf``."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    require(
        model_bytes(n_users, n_items, config.factor_num, config.layers),
        f"a {name} of {n_users:,} users and {n_items:,} items (factor_num {config.factor_num}, "
        f"layers {config.layers})",
        "lower factor_num (--factor-num) or layers (--layers)",
    )
    return MODELS[name](n_users, n_items, config)


def model_name(model: Recommender) -> str:
    """The :data:`MODELS` key of a model whose class is one of them (not a subclass)."""
    for key, cls in MODELS.items():
        if type(model) is cls:
            return key
    raise ConfigError(f"{type(model).__name__} is not one of {', '.join(MODELS)}")


def config_dict(config: ModelConfig) -> dict:
    """A plain dict of a config (for checkpoints and TensorBoard)."""
    return {**asdict(config), "layers": list(config.layers)}
