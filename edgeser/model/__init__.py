"""What a bundle is and how its graphs are run: ``bundle.py`` (bundle.json's schema, hashes, digest, the checks on
load), ``writer.py`` (writing a bundle whole or not at all), ``signing.py`` (Ed25519 signatures), ``specs.py`` (graph
input/output specs, the CTC frame formula), ``graph_io.py`` (waveforms into a speech graph's feeds), ``head.py``
(running the emotion head, ``fusion.onnx``)."""
