"""Chapter 7: the models shipped with the course, their records and their README.

``demucs_sampled.pt`` (the default: trained on the sampled-instrument set) and ``demucs_toy.pt`` (the toy set). Load
one with :func:`demucs_course.loading.load_pretrained`; :mod:`demucs_course.pretrained.records` measures their scores
and writes the figures the READMEs quote.
"""

#: The shipped models: name -> the data set it was trained and scored on. Each is ``demucs_<name>.pt`` in this
#: folder, with its record ``demucs_<name>.json`` beside it.
PRETRAINED_MODELS = {"sampled": "sampled", "toy": "toy"}
#: The model :func:`~demucs_course.loading.load_pretrained` and ``demucs-course separate`` use unless told otherwise.
DEFAULT_MODEL = "sampled"
