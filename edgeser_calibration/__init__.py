"""Representative sets for INT8 calibration (issue 5: building, recording, and feed readers).

Nothing is implemented here yet; ``edgeser quantize`` does not exist until then.
"""
