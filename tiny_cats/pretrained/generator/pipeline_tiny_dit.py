"""``TinyDiTPipeline``: generate cats of a chosen breed with a TinyDiT and a diffusers scheduler.

The transformer predicts a rectified-flow velocity, so sampling uses diffusers'
``FlowMatchEulerDiscreteScheduler`` (any scheduler with the same ``step`` contract can be swapped
in with ``Scheduler.from_config(pipe.scheduler.config)``). Classifier-free guidance runs the
conditional and the null-label batch together and mixes them with ``guidance_scale``, at every
step or only within ``guidance_interval``. ``latents``, ``callback_on_step_end`` and
``output_type="latent"`` follow the diffusers pipeline contract.

Self-contained (its sibling ``modeling_tiny_dit.py`` travels with it), so that
``DiffusionPipeline.from_pretrained(DIR, trust_remote_code=True)`` works without tiny-cats;
``TinyDiTPipeline.from_pretrained(DIR)`` is diffusers' own loader, with this module's classes.
Breed names resolve against the pipeline's own ``id2label`` (saved in ``model_index.json``).
"""

from __future__ import annotations

import json
import numbers
import os
import re
import shutil
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput, ModelMixin, SchedulerMixin
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .modeling_tiny_dit import TinyDiTTransformer2DModel

PIPELINE_MODULE = "pipeline_tiny_dit"
TRANSFORMER_MODULE = "modeling_tiny_dit"
OUTPUT_TYPES = ("pil", "np", "pt", "latent")
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
    _callback_tensor_inputs = ["latents"]

    def __init__(self, transformer: ModelMixin, scheduler: SchedulerMixin, id2label: Optional[dict] = None):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler)
        id2label = {int(k): v for k, v in (id2label or dict(enumerate(DEFAULT_BREEDS))).items()}
        self.register_to_config(id2label=id2label)
        self.labels = {name: i for i, name in id2label.items()}
        self._lookup = {normalize_breed(name): i for name, i in self.labels.items()}

    def get_label_ids(self, label: Union[BreedSpec, Sequence[BreedSpec]]) -> List[int]:
        """Breed names ('maine coon', 'Maine-Coon', 'MAINE_COON', 'Siamese'...) or class ids (ints, a list,
        a numpy array or an integer tensor) -> class ids.

        Names are matched against ``id2label`` in any case, with spaces, dashes or underscores.
        Raises ``ValueError`` naming the valid breeds for an unknown name, ``other`` or an id out of range.
        """
        if isinstance(label, torch.Tensor):  # class ids as a tensor, as DiTPipeline takes them
            if label.is_floating_point() or label.is_complex():
                raise TypeError(f"class ids must be integers, got a {label.dtype} tensor")
            label = label.reshape(-1).tolist()
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

    @property
    def guidance_scale(self) -> float:
        """The classifier-free guidance scale of the running (or last) call; a step-end callback may change it."""
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """Set ``pipe._interrupt = True`` in a step-end callback to skip the remaining steps."""
        return self._interrupt

    def prepare_latents(self, batch_size: int, num_channels: int, size: int, dtype, device, generator,
                        latents: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The starting noise: ``latents`` if given (checked, moved to the model's device and dtype), else N(0, 1)."""
        shape = (batch_size, num_channels, size, size)
        if latents is not None:
            if not isinstance(latents, torch.Tensor):
                raise ValueError(f"latents must be a torch.Tensor, got {type(latents).__name__}")
            if tuple(latents.shape) != shape:
                raise ValueError(
                    f"latents must have shape {shape} (images, channels, side, side), got {tuple(latents.shape)}"
                )
            return latents.to(device=device, dtype=dtype)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"{len(generator)} generators given for {batch_size} images; pass one, or one per image")
        return randn_tensor(shape, generator=generator, device=device, dtype=dtype)

    @staticmethod
    def check_guidance_interval(guidance_interval) -> Optional[tuple]:
        """``None`` or ``(low, high)`` with ``0 <= low < high <= 1`` -> a tuple of floats; anything else is refused."""
        if guidance_interval is None:
            return None
        message = f"guidance_interval must be (low, high) with 0 <= low < high <= 1, got {guidance_interval!r}"
        if isinstance(guidance_interval, (str, bytes)) or not isinstance(guidance_interval, Sequence):
            raise ValueError(message)
        if len(guidance_interval) != 2:
            raise ValueError(message)
        try:
            low, high = (float(v) for v in guidance_interval)
        except (TypeError, ValueError):
            raise ValueError(message) from None
        if any(isinstance(v, bool) for v in guidance_interval) or not 0.0 <= low < high <= 1.0:  # NaN fails too
            raise ValueError(message)
        return low, high

    def guided_at(self, timestep: torch.Tensor, guidance_interval: Optional[tuple]) -> bool:
        """Whether this step runs classifier-free guidance: scale > 1, and sigma = t / 1000 in (low, high]."""
        if self._guidance_scale <= 1.0:
            return False
        if guidance_interval is None:
            return True
        sigma = float(timestep) / self.scheduler.config.get("num_train_timesteps", 1000)
        return guidance_interval[0] < sigma <= guidance_interval[1]

    @torch.no_grad()
    def __call__(
        self,
        breed: Union[str, int, Sequence[Union[str, int]]],
        num_images_per_breed: int = 1,
        num_inference_steps: int = 8,
        guidance_scale: float = 6.0,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        output_type: str = "pil",
        return_dict: bool = True,
        latents: Optional[torch.Tensor] = None,
        guidance_interval: Optional[Tuple[float, float]] = None,
        callback_on_step_end: Optional[Union[Callable[..., dict], PipelineCallback, MultiPipelineCallbacks]] = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ):
        """Generate ``num_images_per_breed`` images for each breed given.

        Args:
            breed: a breed name or class id, or a list of them (see :meth:`get_label_ids`).
            num_images_per_breed: images per breed; image ``i`` of breed ``b`` is at ``b * n + i``.
            num_inference_steps: sampler steps.
            guidance_scale: classifier-free guidance; <= 1 turns it off (one forward per step). NaN,
                infinite and negative values are refused with a ``ValueError``.
            generator: a ``torch.Generator``, or one per image, for reproducible noise.
            output_type: ``"pil"`` (list of PIL images), ``"np"`` (N, H, W, 3) in [0, 1], ``"pt"``
                (N, 3, H, W) in [0, 1], or ``"latent"``: the final sample as the model sees it (N, 3, H, W),
                about [-1, 1], unclamped (this pipeline works in pixel space: its "latents" are images).
            return_dict: an :class:`~diffusers.ImagePipelineOutput` (else a one-element tuple).
            latents: starting noise of shape (number of images, channels, side, side) instead of
                sampling it (``generator`` is then unused).
            guidance_interval: ``(low, high)``, noise levels sigma = t / 1000 in [0, 1] (1 = pure noise):
                guidance runs only at steps with ``low < sigma <= high``, elsewhere only the
                conditional branch (one forward instead of two). ``None`` (default): at every step.
                Guidance in a limited interval, Kynkäänniemi et al. 2024.
            callback_on_step_end: called after each step as ``callback(pipe, step, timestep, kwargs)``
                with ``kwargs`` holding the tensors named in ``callback_on_step_end_tensor_inputs``
                (of :attr:`_callback_tensor_inputs`: ``"latents"``); the dict it returns may replace
                them. It may also change ``pipe._guidance_scale`` or set ``pipe._interrupt``.
            callback_on_step_end_tensor_inputs: see above.
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
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}")
        guidance_interval = self.check_guidance_interval(guidance_interval)
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        unknown = [k for k in callback_on_step_end_tensor_inputs or () if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, got {unknown}"
            )
        class_ids = [i for i in self.get_label_ids(breed) for _ in range(num_images_per_breed)]
        if len(class_ids) > MAX_IMAGES_PER_CALL:
            raise ValueError(f"{len(class_ids)} images asked in one call; at most {MAX_IMAGES_PER_CALL}")
        self._guidance_scale = guidance_value
        self._interrupt = False
        device = self._execution_device
        sample = self.prepare_latents(len(class_ids), self.transformer.config.in_channels,
                                      self.transformer.config.sample_size, self.transformer.dtype, device,
                                      generator, latents)
        labels = torch.tensor(class_ids, device=device)
        labels_with_null = torch.cat([labels, torch.full_like(labels, self.transformer.null_class_id)])

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        for i, t in enumerate(self.progress_bar(timesteps)):
            if self.interrupt:
                continue
            guided = self.guided_at(t, guidance_interval)
            model_input = torch.cat([sample, sample]) if guided else sample
            velocity = self.transformer(model_input, t.expand(model_input.shape[0]),
                                        labels_with_null if guided else labels).sample
            if guided:
                cond, uncond = velocity.chunk(2)
                velocity = uncond + self._guidance_scale * (cond - uncond)
            sample = self.scheduler.step(velocity, t, sample).prev_sample
            if callback_on_step_end is not None:
                tensors = {"latents": sample}
                outputs = callback_on_step_end(self, i, t, {k: tensors[k] for k in callback_on_step_end_tensor_inputs})
                sample = (outputs or {}).get("latents", sample)

        self.maybe_free_model_hooks()
        if output_type == "latent":
            result = sample
        else:
            images = (sample.float() / 2 + 0.5).clamp(0, 1)
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
        code, and the code files are copied beside the weights. With ``push_to_hub=True`` the
        finished folder is uploaded as diffusers does it (``repo_id``, ``token``, ``private``,
        ``commit_message``, ``create_pr``), after the code files are in place.
        """
        push_to_hub = kwargs.pop("push_to_hub", False)
        hub = {key: kwargs.pop(key) for key in ("repo_id", "token", "private", "commit_message", "create_pr")
               if key in kwargs}
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
        if push_to_hub:
            from diffusers.utils.hub_utils import load_or_create_model_card, populate_model_card
            from huggingface_hub import create_repo

            repo_id = create_repo(hub.get("repo_id", root.name), exist_ok=True, private=hub.get("private"),
                                  token=hub.get("token")).repo_id
            card = populate_model_card(load_or_create_model_card(repo_id, token=hub.get("token"), is_pipeline=True))
            card.save(str(root / "README.md"))
            self._upload_folder(str(root), repo_id, token=hub.get("token"), commit_message=hub.get("commit_message"),
                                create_pr=hub.get("create_pr", False))

    # Saved folders name the pipeline and the transformer by their code files (``["pipeline_tiny_dit",
    # "TinyDiTPipeline"]``), which is what lets plain ``DiffusionPipeline`` load them as remote code.
    # Loading through this class (``TinyDiTPipeline.from_pretrained``) reads those two entries as this
    # module's own classes instead, so diffusers' loader does everything else (Hub downloads,
    # ``variant``, ``torch_dtype`` dicts, ``device_map``, ``use_safetensors``, ``low_cpu_mem_usage``,
    # ``dduf_file``...) without ``trust_remote_code`` and without importing a second copy of the code.

    @classmethod
    def from_pipe(cls, pipeline: DiffusionPipeline, **kwargs) -> "TinyDiTPipeline":
        """diffusers' ``from_pipe``, which also carries the transformer over.

        diffusers only reuses a model whose class is exactly the ``__init__`` annotation. The annotation
        is ``ModelMixin``, because remote code loads ``modeling_tiny_dit`` twice and an exact class would
        be another object. So the transformer is passed on explicitly, unless ``transformer=`` is given.
        """
        if "transformer" not in kwargs and isinstance(getattr(pipeline, "transformer", None), ModelMixin):
            kwargs["transformer"] = pipeline.transformer
        return super().from_pipe(pipeline, **kwargs)

    @classmethod
    def _dict_from_json_file(cls, json_file, *args, **kwargs) -> dict:
        """``model_index.json`` as diffusers reads it, for downloads and loading: the pipeline is this class."""
        config = super()._dict_from_json_file(json_file, *args, **kwargs)
        if config.get("_class_name") == [PIPELINE_MODULE, cls.__name__]:
            config["_class_name"] = cls.__name__
        return config

    @classmethod
    def load_config(cls, *args, **kwargs):
        """The index as ``from_pretrained`` loads it: the transformer is this module's sibling class.

        (Not in ``_dict_from_json_file``: a Hub download must still see the transformer's code file named.)
        """
        loaded = super().load_config(*args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        transformer_class = TinyDiTTransformer2DModel
        if config.get("transformer") == [TRANSFORMER_MODULE, transformer_class.__name__]:
            config["transformer"] = [transformer_class.__module__, transformer_class.__name__]
        return loaded


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

