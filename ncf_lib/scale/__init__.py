"""Beyond one process on a laptop: ``torchrun`` (:mod:`~ncf_lib.scale.distributed`), a
row-sparse Adam (:mod:`~ncf_lib.scale.optimizers`), negatives drawn on the GPU
(:mod:`~ncf_lib.scale.sampler`), hand-written gradients for the CPU
(:mod:`~ncf_lib.scale.hand_gradients`), candidates for large catalogues
(:mod:`~ncf_lib.scale.candidates`) and a parse cache (:mod:`~ncf_lib.scale.parse_cache`).
The first four are keyword arguments of :func:`ncf_lib.train.fit`; :func:`fit_options`
picks them. Imports the core; the core never imports this."""

from __future__ import annotations

from ncf_lib import train
from ncf_lib.errors import ConfigError
from ncf_lib.scale import distributed, optimizers
from ncf_lib.scale import hand_gradients as by_hand
from ncf_lib.scale.sampler import TorchSampler
from ncf_lib.train import TrainConfig

#: Where negatives are drawn (``--sampler``): ``auto`` is ``torch`` on CUDA, else ``numpy``.
SAMPLERS = ("auto", "numpy", "torch")
#: The optimisers :func:`fit_options` trains with (``--optimizer``).
OPTIMIZERS = (*train.OPTIMIZERS, "sparse-adam")


def fit_options(
    config: TrainConfig, *, hand_gradients: bool = False, sampler: str = "auto"
) -> tuple[TrainConfig, dict]:
    """``(config, keyword arguments)`` of :func:`ncf_lib.train.fit` for ``config`` in this
    process: ``config, options = fit_options(config); fit(model, data, config, **options)``.

    * under ``torchrun`` (``WORLD_SIZE`` set): :func:`ncf_lib.scale.distributed.fit_options`
      (joins the process group; ranks other than 0 get a config without outputs);
    * ``config.optimizer == "sparse-adam"``: :class:`~ncf_lib.scale.optimizers.SparseRowAdam`
      and its :func:`~ncf_lib.scale.optimizers.train_epoch` (sparse gradients);
    * ``hand_gradients``: :func:`ncf_lib.scale.hand_gradients.train_epoch` (the same numbers
      as autograd for the paper's models on the CPU, dense or sparse; any other model uses
      autograd);
    * ``sampler``: ``numpy`` (:class:`~ncf_lib.sampling.NegativeSampler`), ``torch``
      (:class:`~ncf_lib.scale.sampler.TorchSampler`, another random stream) or ``auto``.

    Without any of these the options are empty: ``fit``'s defaults.
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler (--sampler) must be one of {SAMPLERS}, got {sampler!r}")
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(
            f"optimizer (--optimizer) must be one of {', '.join(OPTIMIZERS)}, "
            f"got {config.optimizer!r}"
        )
    options: dict = {}
    epoch = train.train_epoch
    if config.optimizer == "sparse-adam":
        epoch, options["make_optimizer"] = optimizers.train_epoch, optimizers.make_optimizer
    if hand_gradients:
        epoch = by_hand.train_epoch
    if epoch is not train.train_epoch:
        options["train_epoch"] = epoch
    on_gpu = train.resolve_device(config.device).type == "cuda"
    if sampler == "torch" or (sampler == "auto" and on_gpu):
        options["make_sampler"] = TorchSampler
    ranks = distributed.from_environment()
    if ranks is not None:
        config, shared = distributed.fit_options(ranks, config, inner=epoch)
        options.update(shared)
    return config, options
