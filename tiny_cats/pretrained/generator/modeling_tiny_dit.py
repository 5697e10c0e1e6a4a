"""TinyDiT: a small pixel-space, class-conditional diffusion transformer (diffusers ``ModelMixin``).

The shape follows DiT (Peebles & Xie, 2023) and diffusers' ``DiTTransformer2DModel``: patchify
with a strided convolution, add fixed 2-D sin-cos position embeddings, run transformer blocks
whose LayerNorms are modulated by the timestep + class embedding (adaLN-Zero: the modulation
starts at zero so every block starts as the identity), then a modulated linear head and
unpatchify. The class table has one extra row, the "null" label, that classifier-free
guidance uses for the unconditional prediction.

Three options, chosen by the equal-time ablation in ``training/ablate_generator.py`` (all off
reproduces the original TinyDiT, so older configs load unchanged):
- ``long_skip``: U-ViT's long skip connections (Bao et al., 2023): each of the last
  ``(num_layers - 1) // 2`` blocks first mixes in the output of its mirror block from the first
  half (concatenate, then a linear layer that starts as "keep x, ignore the skip").
- ``final_conv``: a 3x3 convolution after unpatchify (U-ViT), so neighbouring patches can agree at
  their borders; it starts as the identity.
- ``prediction_type="sample"``: the network predicts the clean image x0 (JiT, Li & He, 2025) and
  ``forward`` turns it into the velocity ``(x_t - x0) / t`` (t clamped at ``min_sigma``), so
  training still uses the velocity loss and every sampler sees a velocity model.

Self-contained (torch + diffusers) so that it can travel as Hub remote code.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Union

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


@lru_cache(maxsize=8)
def sincos_position_embedding(dim: int, grid: int) -> torch.Tensor:
    """(grid*grid, dim) fixed 2-D sin-cos embedding; computed per grid size, so any resolution works."""
    if dim % 4:
        raise ValueError(f"hidden size {dim} must be divisible by 4 for 2-D sin-cos embeddings")
    coords = torch.arange(grid, dtype=torch.float64)
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    parts = []
    for axis in (xs, ys):
        angles = axis.reshape(-1, 1) * omega.reshape(1, -1)
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1).float()


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TinyDiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero modulation of attention and MLP."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        mlp_hidden = int(hidden_size * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, mlp_hidden), nn.GELU(approximate="tanh"), nn.Linear(mlp_hidden, hidden_size))
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.num_heads, width // self.num_heads).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)  # views; indexing would allocate zero-filled grads in backward
        out = F.scaled_dot_product_attention(query, key, value)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(cond).chunk(6, dim=1)
        x = x + gate1.unsqueeze(1) * self.attention(modulate(self.norm1(x), shift1, scale1))
        return x + gate2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift2, scale2))


class TinyDiTTransformer2DModel(ModelMixin, ConfigMixin):
    """Class-conditional DiT over pixels.

    Args:
        sample_size: default image side (32-256); any multiple of ``patch_size`` works at run time.
        patch_size: side of the square patches that become tokens.
        in_channels / out_channels: image channels in and predicted channels out.
        hidden_size, num_layers, num_attention_heads, mlp_ratio: transformer width, depth, heads, MLP width.
        num_classes: conditioning classes (the 12 cat breeds); id ``num_classes`` is the null label.
        long_skip, final_conv: U-ViT long skip connections and the final 3x3 convolution (see above).
        prediction_type: ``"velocity"`` (the network's output is the velocity) or ``"sample"``
            (it predicts x0, converted to a velocity in ``forward``).
        min_sigma: the smallest t used in that conversion.
    """

    _supports_gradient_checkpointing = True  # per block (enable_gradient_checkpointing)
    PREDICTION_TYPES = ("velocity", "sample")

    @register_to_config
    def __init__(
        self,
        sample_size: int = 64,
        patch_size: int = 4,
        in_channels: int = 3,
        out_channels: int = 3,
        hidden_size: int = 256,
        num_layers: int = 6,
        num_attention_heads: int = 4,
        mlp_ratio: float = 4.0,
        num_classes: int = 12,
        long_skip: bool = False,
        final_conv: bool = False,
        prediction_type: str = "velocity",
        min_sigma: float = 0.05,
    ):
        super().__init__()
        if prediction_type not in self.PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {self.PREDICTION_TYPES}, got {prediction_type!r}")
        if not 8 <= sample_size <= 512 or sample_size % patch_size:
            raise ValueError(f"sample_size {sample_size} must be in 8..512 and divisible by patch_size {patch_size}")
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} must be divisible by num_attention_heads {num_attention_heads}")
        self.patch_embed = nn.Conv2d(in_channels, hidden_size, patch_size, stride=patch_size)
        self.time_embed = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))
        self.class_embed = nn.Embedding(num_classes + 1, hidden_size)
        self.blocks = nn.ModuleList(TinyDiTBlock(hidden_size, num_attention_heads, mlp_ratio) for _ in range(num_layers))
        self.norm_out = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.adaln_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        self.proj_out = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        num_skips = (num_layers - 1) // 2 if long_skip else 0
        self.skip_linears = nn.ModuleList(nn.Linear(2 * hidden_size, hidden_size) for _ in range(num_skips))
        self.conv_out = nn.Conv2d(out_channels, out_channels, 3, padding=1) if final_conv else None
        self.gradient_checkpointing = False
        self.initialize_weights()

    @property
    def null_class_id(self) -> int:
        return self.config.num_classes

    def initialize_weights(self) -> None:
        """DiT's initialisation: Xavier linears, small embeddings, zero modulation and output."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(self.patch_embed.weight.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.class_embed.weight, std=0.02)
        for layer in self.time_embed:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaln[-1].weight)
            nn.init.zeros_(block.adaln[-1].bias)
        for layer in (self.adaln_out[-1], self.proj_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        width = self.config.hidden_size
        for layer in self.skip_linears:  # starts as "keep x, ignore the skip"
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
            with torch.no_grad():
                layer.weight[:, :width].copy_(torch.eye(width))
        if self.conv_out is not None:
            nn.init.dirac_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: Union[torch.Tensor, float, int],
        class_labels: torch.Tensor,
        return_dict: bool = True,
    ) -> Union[Transformer2DModelOutput, tuple]:
        """Predict the flow-matching velocity for ``sample`` (N, C, H, W) at ``timestep`` (0..1000)."""
        batch, _, height, width = sample.shape
        p = self.config.patch_size
        if height != width or height % p:
            raise ValueError(f"sample must be square with a side divisible by {p}, got {height}x{width}")
        timestep = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32).reshape(-1).expand(batch)
        grid = height // p
        x = self.patch_embed(sample).flatten(2).transpose(1, 2)
        x = x + sincos_position_embedding(self.config.hidden_size, grid).to(x.device, x.dtype)
        t_freq = get_timestep_embedding(timestep, self.config.hidden_size, flip_sin_to_cos=True, downscale_freq_shift=0)
        cond = self.time_embed(t_freq.to(x.dtype)) + self.class_embed(class_labels.to(sample.device).long())
        num_skips, skips = len(self.skip_linears), []
        first_out_block = len(self.blocks) - num_skips
        for i, block in enumerate(self.blocks):
            if i >= first_out_block:
                x = self.skip_linears[i - first_out_block](torch.cat([x, skips.pop()], dim=-1))
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = self._gradient_checkpointing_func(block, x, cond)
            else:
                x = block(x, cond)
            if i < num_skips:
                skips.append(x)
        shift, scale = self.adaln_out(cond).chunk(2, dim=1)
        x = self.proj_out(modulate(self.norm_out(x), shift, scale))
        channels = self.config.out_channels
        x = x.view(batch, grid, grid, p, p, channels).permute(0, 5, 1, 3, 2, 4).reshape(batch, channels, height, width)
        if self.conv_out is not None:
            x = self.conv_out(x)
        if self.config.prediction_type == "sample":  # x0 -> velocity, so samplers and the loss see a velocity
            t = (timestep / 1000.0).clamp(min=self.config.min_sigma).view(-1, 1, 1, 1).to(x.dtype)
            x = (sample - x) / t
        if not return_dict:
            return (x,)
        return Transformer2DModelOutput(sample=x)
