"""Code the MRSynth Slicer modules share: MRML <-> SimpleITK volumes, the child-process runner and the
worker it starts, model listing, dependencies, registration and sample data.

Only ``widget.py`` (the panel code, loaded by the modules inside Slicer) imports Qt; the logic runs
on ``slicer-core`` (MRML without Qt) in the test suite as well as inside the Slicer application.
"""
