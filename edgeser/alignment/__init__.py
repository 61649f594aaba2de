"""Words, syllables and phones in time, for the paper's segment-level pooling and for ``edgeser align``:
``segmenter.py`` (segments from CTC emissions), ``aligner.py`` (the aligner without a bundle), ``pooling.py``
(frames into segment embeddings), ``textgrid.py`` (Praat TextGrids); ``ctc/`` (Viterbi, spans, decoding, hama's
emissions) and ``phonetics/`` (transcripts, lexicon, syllables)."""
