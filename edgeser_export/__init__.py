"""edgeser's torch side: checkpoints to ONNX bundles (needs the ``[export]`` extra).

Nothing in ``edgeser/`` (the runtime) imports this package except the CLI, lazily.
"""
