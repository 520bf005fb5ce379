"""The model switchboard (DESIGN §4): three choices and a decoder, and the paper's presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

GROUP_ENCODER_CHOICES = ("deepsets", "average", "product")
INSTANCE_ENCODER_CHOICES = ("conditional", "unconditional")
REGULARIZER_CHOICES = ("set-critic", "pair-critic", "none")
DECODER_CHOICES = ("exam", "mlp")
CONDITIONING_CHOICES = ("concat", "film")

PRESETS = {
    "cxvae": {"group_encoder": "deepsets", "instance_encoder": "conditional", "regularizer": "set-critic"},
    "mlvae": {"group_encoder": "product", "instance_encoder": "unconditional", "regularizer": "none"},
    "gvae": {"group_encoder": "average", "instance_encoder": "unconditional", "regularizer": "none"},
    "nemeth": {"group_encoder": "average", "instance_encoder": "unconditional", "regularizer": "pair-critic"},
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: dimensions, switches and width.

    ``conditioning`` is how a conditional instance encoder reads u (``concat``: the paper's;
    ``film``: feature-wise scale and shift); ``obs_std`` fixes the decoder's observation
    standard deviation (``None``: learned); ``set_layers`` is the number of pooling rounds of
    the ``deepsets`` group encoder (1: the paper's).
    """

    x_dim: int = 1
    u_dim: int = 2
    v_dim: int = 1
    hidden: int = 64
    group_encoder: str = "deepsets"
    instance_encoder: str = "conditional"
    regularizer: str = "set-critic"
    decoder: str = "exam"
    conditioning: str = "concat"
    obs_std: float | None = None
    set_layers: int = 1

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("group_encoder", self.group_encoder, GROUP_ENCODER_CHOICES),
            ("instance_encoder", self.instance_encoder, INSTANCE_ENCODER_CHOICES),
            ("regularizer", self.regularizer, REGULARIZER_CHOICES),
            ("decoder", self.decoder, DECODER_CHOICES),
            ("conditioning", self.conditioning, CONDITIONING_CHOICES),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        for name in ("x_dim", "u_dim", "v_dim", "hidden", "set_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.set_layers > 1 and self.group_encoder != "deepsets":
            raise ValueError(f"set_layers > 1 needs the deepsets group encoder, got {self.group_encoder!r}")
        if self.obs_std is not None and not self.obs_std > 0:
            raise ValueError(f"obs_std must be > 0 (or None to learn it), got {self.obs_std}")

    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """A paper preset with any field overridden (``None`` overrides are ignored)."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(cls(**PRESETS[name]), **given)

    def to_dict(self) -> dict:
        return asdict(self)
