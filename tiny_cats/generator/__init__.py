"""The generator's code: exactly the files that travel as remote code with the diffusers pipeline.

``TinyDiTPipeline.save_pretrained`` copies ``pipeline_tiny_dit.py`` and ``modeling_tiny_dit.py``
to the pipeline folder and ``modeling_tiny_dit.py`` to its ``transformer/`` folder. They import
only torch, diffusers, PIL and each other, so ``DiffusionPipeline.from_pretrained(DIR,
trust_remote_code=True)`` works without tiny-cats installed. Breed names are resolved against the
pipeline's own ``id2label``, not the classifier's labels. This file does not travel and imports nothing.
"""
