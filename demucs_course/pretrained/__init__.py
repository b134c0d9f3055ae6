"""Chapter 7: the model shipped with the course (``demucs_toy.pt``), its record and its README.

Load it with :func:`demucs_course.loading.load_pretrained`; :mod:`demucs_course.pretrained.records` measures its scores
and writes the figures its READMEs quote.
"""
