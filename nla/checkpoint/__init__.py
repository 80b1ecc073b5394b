"""NLA checkpoints: the released two-directory format, our compact LoRA form, and ``init``."""

from nla.checkpoint.init import init_nla
from nla.checkpoint.load import load_nla
from nla.checkpoint.model import NLA
from nla.checkpoint.save import export_released, save_compact, save_released

__all__ = ["NLA", "export_released", "init_nla", "load_nla", "save_compact", "save_released"]
