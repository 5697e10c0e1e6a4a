"""``TinyDiTPipeline``: generate cats of a chosen breed with a TinyDiT and a diffusers scheduler.

The transformer predicts a rectified-flow velocity, so sampling uses diffusers'
``FlowMatchEulerDiscreteScheduler`` (any scheduler with the same ``step`` contract can be swapped
in with ``Scheduler.from_config(pipe.scheduler.config)``). Classifier-free guidance runs the
conditional and the null-label batch together and mixes them with ``guidance_scale``.

Self-contained (its sibling ``modeling_tiny_dit.py`` travels with it), so that
``DiffusionPipeline.from_pretrained(DIR, trust_remote_code=True)`` works without tiny-cats.
Breed names resolve against the pipeline's own ``id2label`` (saved in ``model_index.json``).
"""

from __future__ import annotations

import json
import numbers
import os
import re
import shutil
from pathlib import Path
from typing import List, Optional, Sequence, Union

import diffusers
import torch
from PIL import Image
from diffusers import DiffusionPipeline, ImagePipelineOutput, ModelMixin, SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .modeling_tiny_dit import TinyDiTTransformer2DModel

PIPELINE_MODULE = "pipeline_tiny_dit"
TRANSFORMER_MODULE = "modeling_tiny_dit"
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "proxies")
MAX_IMAGES_PER_CALL = 4096
# The classes of a pipeline built without ``id2label``: the 12 Oxford-IIIT Pet cat breeds, in the
# order of the classifier's labels (a test keeps the two equal).
DEFAULT_BREEDS = (
    "Abyssinian", "Bengal", "Birman", "Bombay", "British_Shorthair", "Egyptian_Mau",
    "Maine_Coon", "Persian", "Ragdoll", "Russian_Blue", "Siamese", "Sphynx",
)
# The classifier's label for "not a cat": no breed to draw, so it gets its own refusal.
NOT_A_CAT_LABEL = "other"
BreedSpec = Union[str, int]


def normalize_breed(name: str) -> str:
    """'maine coon', 'Maine-Coon' and 'MAINE_COON' all become 'maine_coon'."""
    return re.sub(r"[\s\-_]+", "_", name.strip()).lower()


class TinyDiTPipeline(DiffusionPipeline):
    """Class-conditional image generation over the 12 cat breeds.

    Args:
        transformer: the :class:`TinyDiTTransformer2DModel` denoiser.
        scheduler: a flow-matching scheduler, e.g. ``FlowMatchEulerDiscreteScheduler``.
        id2label: class id -> breed name of the transformer's classes (default: the 12 cat breeds,
            :data:`DEFAULT_BREEDS`). Breed names given to the pipeline are resolved against it.
    """

    model_cpu_offload_seq = "transformer"

    def __init__(self, transformer: ModelMixin, scheduler: SchedulerMixin, id2label: Optional[dict] = None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler)
        id2label = {int(k): v for k, v in (id2label or dict(enumerate(DEFAULT_BREEDS))).items()}
        self.register_to_config(id2label=id2label)
        self.labels = {name: i for i, name in id2label.items()}
        self._lookup = {normalize_breed(name): i for name, i in self.labels.items()}

    def get_label_ids(self, label: Union[BreedSpec, Sequence[BreedSpec]]) -> List[int]:
        """Breed names ('maine coon', 'Maine-Coon', 'MAINE_COON', 'Siamese'...) or class ids -> class ids.

        Names are matched against ``id2label`` in any case, with spaces, dashes or underscores.
        Raises ``ValueError`` naming the valid breeds for an unknown name, ``other`` or an id out of range.
        """
        items = [label] if isinstance(label, (str, numbers.Integral)) else list(label)
        valid = ", ".join(self.labels)
        ids = []
        for item in items:
            if isinstance(item, bool):
                raise TypeError("breed must be a name or an integer id, not a bool")
            if isinstance(item, numbers.Integral):
                if int(item) not in self.labels.values():
                    raise ValueError(f"class id {item} out of range 0..{len(self.labels) - 1}")
                ids.append(int(item))
                continue
            if not isinstance(item, str):
                raise TypeError(f"breed name must be a string, got {type(item).__name__}")
            key = normalize_breed(item)
            if key in self._lookup:
                ids.append(self._lookup[key])
            elif key == NOT_A_CAT_LABEL:
                raise ValueError(f"{NOT_A_CAT_LABEL!r} is not a cat breed; choose one of: {valid}")
            else:
                raise ValueError(f"unknown breed {item!r}; valid names are: {valid}")
        if not ids:
            raise ValueError("no breed given")
        return ids

    @torch.no_grad()
    def __call__(
        self,
        breed: Union[str, int, Sequence[Union[str, int]]],
        num_images_per_breed: int = 1,
        num_inference_steps: int = 25,
        guidance_scale: float = 4.0,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Generate ``num_images_per_breed`` images for each breed given.

        ``guidance_scale`` <= 1 turns classifier-free guidance off (one forward per step); NaN,
        infinite and negative values are refused with a ``ValueError``.
        ``output_type``: ``"pil"`` (list of PIL images), ``"np"`` (N, H, W, 3) in [0, 1], ``"pt"`` (N, 3, H, W).
        """
        try:
            guidance_value = float(guidance_scale)
        except (TypeError, ValueError):
            raise ValueError(f"guidance_scale must be a number, got {guidance_scale!r}") from None
        if isinstance(guidance_scale, (bool, str, bytes)) or not 0 <= guidance_value < float("inf"):  # NaN fails both
            raise ValueError(f"guidance_scale must be a finite number >= 0 (<= 1 turns guidance off), got {guidance_scale!r}")
        if num_images_per_breed < 1:
            raise ValueError(f"num_images_per_breed must be at least 1, got {num_images_per_breed}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        class_ids = [i for i in self.get_label_ids(breed) for _ in range(num_images_per_breed)]
        if len(class_ids) > MAX_IMAGES_PER_CALL:
            raise ValueError(f"{len(class_ids)} images asked in one call; at most {MAX_IMAGES_PER_CALL}")
        size = self.transformer.config.sample_size
        channels = self.transformer.config.in_channels
        shape = (len(class_ids), channels, size, size)
        sample = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.transformer.dtype)
        labels = torch.tensor(class_ids, device=self._execution_device)
        use_guidance = guidance_scale > 1.0
        if use_guidance:
            labels = torch.cat([labels, torch.full_like(labels, self.transformer.null_class_id)])

        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_input = torch.cat([sample, sample]) if use_guidance else sample
            velocity = self.transformer(model_input, t.expand(model_input.shape[0]), labels).sample
            if use_guidance:
                cond, uncond = velocity.chunk(2)
                velocity = uncond + guidance_scale * (cond - uncond)
            sample = self.scheduler.step(velocity, t, sample).prev_sample

        images = (sample.float() / 2 + 0.5).clamp(0, 1)
        self.maybe_free_model_hooks()
        if output_type == "pt":
            result = images.cpu()
        else:
            result = images.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                result = self.numpy_to_pil(result)
        if not return_dict:
            return (result,)
        return ImagePipelineOutput(images=result)

    def save_pretrained(self, save_directory: Union[str, os.PathLike], **kwargs):
        """Save, then make the folder loadable as remote code by plain ``DiffusionPipeline``.

        ``model_index.json`` names this file and ``transformer/modeling_tiny_dit.py`` as custom
        code, and the code files are copied beside the weights.
        """
        super().save_pretrained(save_directory, **kwargs)
        root = Path(save_directory)
        here = Path(__file__).parent
        for name in (f"{PIPELINE_MODULE}.py", f"{TRANSFORMER_MODULE}.py"):
            shutil.copyfile(here / name, root / name)
        shutil.copyfile(here / f"{TRANSFORMER_MODULE}.py", root / "transformer" / f"{TRANSFORMER_MODULE}.py")
        index_path = root / "model_index.json"
        index = json.loads(index_path.read_text())
        index["_class_name"] = [PIPELINE_MODULE, type(self).__name__]
        index["transformer"] = [TRANSFORMER_MODULE, type(self.transformer).__name__]
        index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, os.PathLike], **kwargs) -> "TinyDiTPipeline":
        """Load a local folder or Hub repo with this package's classes (no remote code needed)."""
        hub_kwargs = {k: kwargs.pop(k) for k in _HUB_KWARGS if k in kwargs}
        torch_dtype = kwargs.pop("torch_dtype", None)
        index = cls.load_config(pretrained_model_name_or_path, **hub_kwargs)
        transformer = kwargs.pop("transformer", None)
        if transformer is None:
            transformer = TinyDiTTransformer2DModel.from_pretrained(
                pretrained_model_name_or_path, subfolder="transformer", torch_dtype=torch_dtype, **hub_kwargs
            )
        scheduler = kwargs.pop("scheduler", None)
        if scheduler is None:
            scheduler_class = getattr(diffusers, index["scheduler"][1])
            scheduler = scheduler_class.from_pretrained(pretrained_model_name_or_path, subfolder="scheduler", **hub_kwargs)
        if kwargs:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        return cls(transformer=transformer, scheduler=scheduler, id2label=index.get("id2label"))


def images_to_grid(images: Sequence["Image.Image"], columns: int) -> "Image.Image":
    """Tile equally sized PIL images into one grid image, row by row."""
    if not images:
        raise ValueError("no images to tile")
    width, height = images[0].size
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * width, rows * height), "white")
    for i, image in enumerate(images):
        grid.paste(image, ((i % columns) * width, (i // columns) * height))
    return grid

