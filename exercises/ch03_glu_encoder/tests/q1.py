OK_FORMAT = True

test = {   'name': 'q1',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               ">>> OWN = dict(forbid=['torch.nn.functional.glu'])\n"
                                               '>>> _ = torch.manual_seed(0)\n'
                                               '>>> x = torch.randn(3, 8, 5)\n'
                                               '>>> with own_work(**OWN):\n'
                                               '...     y = glu(x)\n'
                                               ">>> assert y.shape == (3, 4, 5), f'expected shape (3, 4, 5), got {tuple(y.shape)}'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
