import pytest
import torch

from nla.dtypes import DTYPE_NAMES, torch_dtype


def test_every_name_resolves_to_its_torch_dtype() -> None:
    assert [torch_dtype(n) for n in DTYPE_NAMES] == [torch.float32, torch.bfloat16, torch.float16]


def test_unknown_name_is_refused_naming_the_option() -> None:
    with pytest.raises(ValueError, match=r"--dtype 'float8': choose one of float32, bfloat16, float16"):
        torch_dtype("float8", "--dtype")
