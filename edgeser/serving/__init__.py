"""Serving many clients: ``service.py`` (the WebSocket service of ``edgeser serve``), ``config.py`` (its limits and
access), ``triton.py`` and ``triton_model.py`` (Triton model repositories, ``edgeser triton``, and their Python-backend
pipeline model), ``pytriton.py`` (``edgeser serve --triton``)."""
