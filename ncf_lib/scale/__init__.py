"""Beyond one process on a laptop: ``torchrun`` (:mod:`~ncf_lib.scale.distributed`), a
row-sparse Adam (:mod:`~ncf_lib.scale.optimizers`), negatives drawn on the GPU
(:mod:`~ncf_lib.scale.sampler`), hand-written gradients for the CPU
(:mod:`~ncf_lib.scale.hand_gradients`), candidates for large catalogues
(:mod:`~ncf_lib.scale.candidates`) and a parse cache (:mod:`~ncf_lib.scale.parse_cache`).
The first four plug into :func:`ncf_lib.train.fit` through
its :class:`~ncf_lib.train.Engine`; :func:`engine` picks them. Imports the core; the core
never imports this."""

from __future__ import annotations

from ncf_lib import train
from ncf_lib.errors import ConfigError
from ncf_lib.scale import distributed, optimizers
from ncf_lib.scale import hand_gradients as by_hand
from ncf_lib.scale.sampler import TorchSampler
from ncf_lib.train import Engine, Processes, TrainConfig

#: Where negatives are drawn (``--sampler``): ``auto`` is ``torch`` on CUDA, else ``numpy``.
SAMPLERS = ("auto", "numpy", "torch")


def engine(config: TrainConfig, *, hand_gradients: bool = False, sampler: str = "auto") -> Engine:
    """The :class:`~ncf_lib.train.Engine` for ``config`` in this process.

    * under ``torchrun`` (``WORLD_SIZE`` set): :class:`~ncf_lib.scale.distributed.Torchrun`;
    * ``config.optimizer == "sparse-adam"``: :class:`~ncf_lib.scale.optimizers.SparseRowAdam`;
    * ``hand_gradients``: :func:`ncf_lib.scale.hand_gradients.train_epoch` (the same numbers
      as autograd for the paper's models on the CPU; any other model uses autograd);
    * ``sampler``: ``numpy`` (:class:`~ncf_lib.sampling.NegativeSampler`), ``torch``
      (:class:`~ncf_lib.scale.sampler.TorchSampler`, another random stream) or ``auto``.
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler (--sampler) must be one of {SAMPLERS}, got {sampler!r}")
    ranks = distributed.from_environment()
    on_gpu = train.resolve_device(config.device).type == "cuda"
    torch_sampler = sampler == "torch" or (sampler == "auto" and on_gpu)
    return Engine(
        processes=Processes() if ranks is None else distributed.Torchrun(ranks),
        train_epoch=by_hand.train_epoch if hand_gradients else train.train_epoch,
        optimizer=optimizers.make_optimizer,
        sampler=_torch_sampler if torch_sampler else train.negative_sampler,
    )


def _torch_sampler(data, config: TrainConfig, device) -> TorchSampler:
    return TorchSampler(data, config.num_ng, config.seed, device)
