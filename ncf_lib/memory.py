"""Will it fit? Estimates of the memory the big arrays of a step take, checked against what the
machine has available before the step starts: a size that cannot fit is one clear error, not
minutes of work ending in an out-of-memory traceback (or the machine swapping)."""

from __future__ import annotations

from pathlib import Path

from ncf_lib.errors import ConfigError

#: Bytes per trained parameter with Adam: the value, its gradient and two moments (float32).
PER_PARAMETER = 4 * 4


def available_bytes(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """Memory the system can give this process without swapping (Linux's ``MemAvailable``);
    ``None`` where it cannot be read (then nothing is refused)."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gib(n: float) -> str:
    """``n`` bytes, readably (``1.5 GiB``, ``12 MiB``)."""
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def require(need: int, what: str, hint: str, available: int | None = None) -> None:
    """:class:`ConfigError` when ``need`` bytes exceed the ``available`` memory (default:
    :func:`available_bytes`), naming ``what`` needs it, both sizes and the ``hint``."""
    available = available_bytes() if available is None else available
    if available is not None and need > available:
        raise ConfigError(
            f"{what} needs about {gib(need)} of memory, more than the {gib(available)} "
            f"available on this machine; {hint}"
        )


def model_bytes(n_users: int, n_items: int, factor_num: int, layers: tuple[int, ...]) -> int:
    """Upper bound of a model's training memory (NeuMF's: a GMF and an MLP embedding per user
    and item, the MLP tower), with Adam's state."""
    embeddings = (n_users + n_items) * (factor_num + layers[0] // 2 + 1)
    tower = sum(a * b for a, b in zip(layers, layers[1:])) + sum(layers) + factor_num
    return (embeddings + tower) * PER_PARAMETER


def epoch_bytes(
    n_train: int, num_ng: int, batch_size: int, factor_num: int, layers: tuple[int, ...]
) -> int:
    """An epoch's arrays (``(user, item, label)`` per positive and negative, drawn and
    shuffled) and one batch's activations and their gradients."""
    rows = n_train * (1 + num_ng)
    batch = min(batch_size, rows) * (2 * factor_num + 2 * sum(layers)) * 4 * 3
    return rows * (8 + 8 + 4) * 3 + batch


def synthetic_bytes(n_users: int, n_items: int, n_interactions: int, rank: int = 8) -> int:
    """:func:`ncf_lib.synthetic.synthetic_ratings`' arrays: the tastes, a block of affinities
    (about 4 million, at least one user's row of items), and the interactions' columns."""
    return (n_users + n_items) * rank * 12 + max(4_000_000, n_items) * 4 * 8 + n_interactions * 80
