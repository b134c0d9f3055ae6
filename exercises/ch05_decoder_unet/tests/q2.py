OK_FORMAT = True

test = {   'name': 'q2',
    'points': 2,
    'suites': [   {   'cases': [   {   'code': '>>> from demucs_course.grading_guard import own_work\n'
                                               '>>> with own_work():\n'
                                               '...     mine = center_trim(torch.arange(10), 6)\n'
                                               ">>> assert mine.tolist() == [2, 3, 4, 5, 6, 7], f'got {mine.tolist()}'\n",
                                       'hidden': False,
                                       'locked': False}],
                      'scored': True,
                      'setup': '',
                      'teardown': '',
                      'type': 'doctest'}]}
