"""What runs the model: the `Backend` protocol (base.py) and its implementations.

`torch_peft` is transformers with peft's LoRA adapters (the default, "torch"). A new backend is
one module implementing `base.Backend`; the `Poet` takes any of them.
"""
