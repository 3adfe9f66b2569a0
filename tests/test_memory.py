"""ncf_lib.memory: sizes that cannot fit are refused before the work, with the estimate and
the memory available."""

from __future__ import annotations

import pytest
from conftest import QUIET, SAMPLE, one_line_error

from ncf_lib.errors import ConfigError
from ncf_lib.memory import available_bytes, gib, model_bytes, require, synthetic_bytes
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.synthetic import synthetic_ratings


def test_available_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  8000 kB\nMemFree:  100 kB\nMemAvailable:  2048 kB\n")
    assert available_bytes(meminfo) == 2048 * 1024
    assert available_bytes(tmp_path / "none") is None  # unknown: nothing is refused


@pytest.mark.parametrize("need, available", [(3 * 2**30, 2 * 2**30), (2**30 + 1, 2**30)])
def test_more_than_available_is_refused_naming_both(need, available):
    with pytest.raises(ConfigError) as refused:
        require(need, "the thing", "make it smaller", available=available)
    assert str(refused.value) == (
        f"the thing needs about {gib(need)} of memory, more than the {gib(available)} "
        "available on this machine; make it smaller"
    )
    require(available, "the thing", "", available=available)  # what fits passes


def test_estimates_grow_with_each_size():
    base = model_bytes(100, 200, 8, (16, 8))
    assert model_bytes(200, 200, 8, (16, 8)) > base and model_bytes(100, 200, 16, (16, 8)) > base
    assert model_bytes(100, 200, 8, (32, 8)) > base
    assert synthetic_bytes(10, 10**9, 20) > synthetic_bytes(10, 10**6, 20)


@pytest.mark.parametrize("config", [ModelConfig(factor_num=10**11), ModelConfig(layers=(2**40, 8))])
def test_a_model_too_big_for_the_machine_is_refused_before_it_is_built(config):
    with pytest.raises(ConfigError, match="needs about .* available on this machine; lower"):
        build_model("neumf", 50, 40, config)


@pytest.mark.parametrize("shape", [(10, 10**10, 20), (10**10, 100, 3 * 10**10)])
def test_a_synthetic_shape_too_big_is_refused_before_it_is_drawn(shape):
    with pytest.raises(ConfigError, match="synthetic:.* needs about .* give a smaller shape"):
        synthetic_ratings(*shape)


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--num-ng", "100000000000"], "--num-ng"),
        (["--factor-num", "100000000000"], "--factor-num"),
        (["--layers", "64", "32", "100000000000"], "--layers"),
        (["--dataset", "synthetic:10x10000000000x20"], "smaller shape"),
    ],
)
def test_the_command_line_refuses_sizes_that_cannot_fit_in_one_line(tmp_path, capsys, flags, says):
    argv = ["train", "--dataset", SAMPLE, "--epochs", "1", *QUIET, "--out", str(tmp_path), *flags]
    one_line_error(argv, capsys, "needs about", "available on this machine", says)
    assert not list(tmp_path.glob("*.pt"))
