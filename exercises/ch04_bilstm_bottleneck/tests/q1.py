OK_FORMAT = True

test = {   'name': 'q1',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> with own_work():\n'
                                               '...     lengths = encoder_lengths(451924)\n'
                                               ">>> assert lengths[-1] == 109, f'expected 109 frames at the bottleneck, got {lengths[-1]}'\n"
                                               ">>> assert len(lengths) == 6, 'one length per layer'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
