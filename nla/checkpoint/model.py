"""A loaded NLA pair: the verbalizer and reconstructor models with their checked metadata."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nla.errors import CheckpointError
from nla.prompts import AVPrompt
from nla.reconstructor import Reconstructor
from nla.sidecar import NLAMeta


@dataclass
class NLA:
    """An activation verbalizer and reconstructor for one target model and layer."""

    id: str
    """Stable identifier: name plus a fingerprint of the sidecars and head."""
    meta: NLAMeta
    av: PreTrainedModel
    av_tokenizer: PreTrainedTokenizerBase
    av_prompt: AVPrompt
    ar: Reconstructor

    @property
    def untrained(self) -> bool:
        """True for an ``init`` NLA: its explanations carry no information yet."""
        return self.meta.stage == "init"

    def check_target(self, target: PreTrainedModel, target_ref: str) -> None:
        """Refuse a target whose width or depth does not fit this NLA."""
        config = target.config.get_text_config()
        if config.hidden_size != self.meta.d_model:
            raise CheckpointError(
                f"NLA {self.id} expects d_model {self.meta.d_model}, but target {target_ref} has "
                f"hidden size {config.hidden_size}"
            )
        if self.meta.layer >= config.num_hidden_layers:
            raise CheckpointError(
                f"NLA {self.id} reads layer {self.meta.layer}, but target {target_ref} has only "
                f"{config.num_hidden_layers} decoder blocks"
            )
