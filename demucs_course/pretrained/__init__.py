"""Chapter 7: the models shipped with the course, their records and their README.

``demucs_toy.pt`` (trained on the toy set). Load one with :func:`demucs_course.loading.load_pretrained`;
:mod:`demucs_course.pretrained.records` measures their scores and writes the figures the READMEs quote. A model of
the sampled-instrument set joins them as ``demucs_sampled.pt`` (and becomes the default) once one separates that
set 3 dB better than the best scaled mixture: ``bench/train_sampled.py`` measures the recipes.
"""

#: The shipped models: name -> the data set it was trained and scored on. Each is ``demucs_<name>.pt`` in this
#: folder, with its record ``demucs_<name>.json`` beside it.
PRETRAINED_MODELS = {"toy": "toy"}
#: The model :func:`~demucs_course.loading.load_pretrained` and ``demucs-course separate`` use unless told otherwise.
DEFAULT_MODEL = "toy"
