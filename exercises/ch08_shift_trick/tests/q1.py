OK_FORMAT = True

test = {   'name': 'q1',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> _ = torch.manual_seed(0)\n'
                                               '>>> with own_work():\n'
                                               '...     o = distinct_offsets(5, 22050)\n'
                                               ">>> assert o.shape == (5,) and o.dtype == torch.long, f'expected 5 offsets as torch.long, got {o}'\n"
                                               ">>> assert (o >= 0).all() and (o < 22050).all(), 'offsets lie in [0, max_shift)'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
